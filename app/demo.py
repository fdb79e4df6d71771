"""Demo data for `gridwork seed-demo`: a small district of Nanhai, Foshan."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.auth.schemas import UserCreate
from app.auth.service import create_user
from app.config import Settings
from app.orgs.models import Level, OrgUnit
from app.orgs.schemas import (
    AttributeValue,
    CategoryIn,
    DepartmentIn,
    OrgUnitIn,
    ServiceAttribute,
)
from app.orgs.service import create_category, create_department, create_org_unit
from app.tickets.machine import Action
from app.tickets.schemas import (
    ActionIn,
    AssistIn,
    DispatchIn,
    EventIn,
    FeedbackIn,
    NoteRequired,
    RateIn,
    VerifyIn,
)
from app.tickets.service import perform_action, report_event
from app.timing.limits import TimeLimit, TimeUnit

DEMO_PASSWORD = "gridwork-demo"
DISTRICT = "NH"

TOWNS = {"GC": "桂城街道", "DL": "大沥镇"}
COMMUNITIES = {  # code: (name, town)
    "GC01": ("东二社区", "GC"),
    "GC02": ("夏北社区", "GC"),
    "DL01": ("盐步社区", "DL"),
    "DL02": ("黄岐社区", "DL"),
}
DEPARTMENTS = {  # code: (name, org unit)
    "NH-CG": ("南海区城市管理和综合执法局", DISTRICT),
    "NH-SZ": ("南海区市政设施管理所", DISTRICT),
    "NH-XF": ("南海区消防救援大队", DISTRICT),
    "GC-ZZ": ("桂城街道综治办", "GC"),
    "DL-ZZ": ("大沥镇综治办", "DL"),
}
CATEGORIES = [  # code, name, limit, urgent limit, default department
    ("garbage", "暴露垃圾", (4, TimeUnit.hours), (2, TimeUnit.hours), "NH-CG"),
    ("fire_lane", "消防通道堵塞", (2, TimeUnit.hours), (30, TimeUnit.minutes), "NH-XF"),
    ("manhole", "井盖缺失破损", (4, TimeUnit.working_hours), (1, TimeUnit.hours), "NH-SZ"),
    ("road_damage", "道路破损", (2, TimeUnit.working_days), (4, TimeUnit.hours), "NH-SZ"),
    ("illegal_building", "违法建设", (5, TimeUnit.working_days), None, "NH-CG"),
    ("dispute", "邻里纠纷", (3, TimeUnit.working_days), (4, TimeUnit.hours), "GC-ZZ"),
]
# Questions citizens answer when they report road damage through Open311.
ROAD_DAMAGE_ATTRIBUTES = [
    ServiceAttribute(
        code="size",
        datatype="singlevaluelist",
        description="破损面积",
        required=True,
        order=1,
        values=[
            AttributeValue(key="small", name="小于1平方米"),
            AttributeValue(key="medium", name="1至5平方米"),
            AttributeValue(key="large", name="大于5平方米"),
        ],
    ),
    ServiceAttribute(
        code="blocking",
        datatype="singlevaluelist",
        description="是否影响通行",
        order=2,
        values=[AttributeValue(key="yes", name="是"), AttributeValue(key="no", name="否")],
    ),
]
USERS = [  # username, display name, role, org unit, department
    ("admin", "系统管理员", Role.admin, DISTRICT, None),
    ("worker", "网格员 李明", Role.grid_worker, "GC01-1", None),
    ("worker2", "网格员 陈芳", Role.grid_worker, "DL01-1", None),
    ("dispatcher", "东二社区指挥中心", Role.dispatcher, "GC01", None),
    ("town_dispatcher", "桂城街道指挥中心", Role.dispatcher, "GC", None),
    ("district_dispatcher", "南海区指挥中心", Role.dispatcher, DISTRICT, None),
    ("handler", "城管执法队员 王强", Role.handler, DISTRICT, "NH-CG"),
    ("handler2", "市政养护员 赵刚", Role.handler, DISTRICT, "NH-SZ"),
    ("supervisor", "区网格办督查", Role.supervisor, DISTRICT, None),
]

GRID_SIZE_DEG = 0.01  # about 1.1 km north-south, 1 km east-west at this latitude
ORIGIN_LAT, ORIGIN_LON = 23.03, 113.10


def grid_square(index: int) -> dict[str, object]:
    """A square grid boundary; the demo's eight grids sit side by side west to east."""
    west = round(ORIGIN_LON + index * GRID_SIZE_DEG, 6)
    east = round(west + GRID_SIZE_DEG, 6)
    south, north = ORIGIN_LAT, round(ORIGIN_LAT + GRID_SIZE_DEG, 6)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def grid_codes() -> list[tuple[str, str]]:
    """(grid code, community code) for the two grids of each community."""
    return [(f"{c}-{n}", c) for c in COMMUNITIES for n in (1, 2)]


async def seed_demo(session: AsyncSession, now: datetime) -> bool:
    """Loads the demo district; False when it is there already."""
    if await session.get(OrgUnit, DISTRICT) is not None:
        return False

    async def unit(code: str, name: str, level: Level, parent: str | None, **kw: object) -> None:
        data = OrgUnitIn(code=code, name=name, level=level, parent_code=parent, **kw)
        await create_org_unit(session, data, now)

    await unit(DISTRICT, "南海区", Level.district, None)
    for code, name in TOWNS.items():
        await unit(code, name, Level.town, DISTRICT)
    for code, (name, town) in COMMUNITIES.items():
        await unit(code, name, Level.community, town)
    for index, (code, community) in enumerate(grid_codes()):
        name = f"{COMMUNITIES[community][0]}第{code[-1]}网格"
        await unit(code, name, Level.grid, community, boundary=grid_square(index))
    for code, (name, org_unit) in DEPARTMENTS.items():
        await create_department(
            session, DepartmentIn(code=code, name=name, org_unit_code=org_unit), now
        )
    for code, name, limit, urgent, department in CATEGORIES:
        await create_category(
            session,
            CategoryIn(
                code=code,
                name=name,
                time_limit=TimeLimit(value=limit[0], unit=limit[1]),
                urgent_time_limit=TimeLimit(value=urgent[0], unit=urgent[1]) if urgent else None,
                default_department_code=department,
                public=code in {"garbage", "road_damage"},
                attributes=ROAD_DAMAGE_ATTRIBUTES if code == "road_damage" else [],
            ),
            now,
        )
    for username, display_name, role, org_unit, user_department in USERS:
        await create_user(
            session,
            UserCreate(
                username=username,
                password=DEMO_PASSWORD,
                display_name=display_name,
                role=role,
                org_unit_code=org_unit,
                department_code=user_department,
            ),
            now,
        )
    return True


# Tickets of the demo, for the console to show: reporter, grid index, category, description,
# urgent, and the steps taken on it since (by the district's dispatcher, the handlers, the
# supervisor and the reporter), one ticket at every step of the loop.
DEMO_TICKETS = [
    ("worker", 0, "garbage", "小区东门垃圾堆积", False, []),
    ("worker", 0, "manhole", "人行道井盖缺失，有行人绊倒风险", True, []),
    ("worker", 1, "garbage", "绿化带内暴露垃圾", False, ["dispatch"]),
    ("worker", 1, "fire_lane", "消防通道被杂物堵塞", True, ["dispatch", "claim"]),
    ("worker", 0, "garbage", "垃圾桶满溢未清运", False, ["dispatch", "claim", "feedback"]),
    ("worker", 1, "garbage", "路边建筑垃圾", False, ["dispatch", "claim", "feedback", "verify"]),
    ("worker2", 4, "road_damage", "路面坑洼积水", False, []),
    ("worker2", 5, "garbage", "河涌边漂浮垃圾", False, ["dispatch"]),
    ("worker", 0, "dispute", "楼上住户夜间噪音扰民（群众来电）", False, ["request_check"]),
    ("worker", 1, "garbage", "排水沟堵塞，垃圾外溢", False, ["dispatch_assisted", "claim"]),
    (
        "worker",
        0,
        "garbage",
        "市政井口周边垃圾堆放",
        False,
        ["dispatch_assisted", "claim", "assist"],
    ),
    ("worker", 1, "garbage", "菜市场外垃圾长期堆放", False, ["dispatch", "urge"]),
    (
        "worker",
        0,
        "garbage",
        "公交站旁垃圾清理后又出现",
        False,
        ["dispatch", "claim", "feedback", "verify", "rate", "reopen"],
    ),
]
_DEMO_ACTIONS: dict[str, tuple[Action, str, ActionIn]] = {
    "dispatch": (
        Action.dispatch,
        "district_dispatcher",
        DispatchIn(department_code="NH-CG", note="请城管处理"),
    ),
    "dispatch_assisted": (
        Action.dispatch,
        "district_dispatcher",
        DispatchIn(
            department_code="NH-CG",
            assisting_department_codes=["NH-SZ"],
            note="城管主办，市政协办",
        ),
    ),
    "claim": (Action.claim, "handler", ActionIn()),
    "feedback": (Action.feedback, "handler", FeedbackIn(note="已处置完毕")),
    "verify": (Action.verify, "district_dispatcher", VerifyIn(passed=True, note="现场核查通过")),
    "request_check": (Action.request_check, "district_dispatcher", ActionIn(note="请网格员核实")),
    "assist": (Action.assist, "handler2", AssistIn(note="已疏通井口，配合完成")),
    "urge": (Action.urge, "supervisor", NoteRequired(note="群众反映强烈，请加快处置")),
    "rate": (Action.rate, "worker", RateIn(score=2, comment="没有清理干净")),
    "reopen": (Action.reopen, "district_dispatcher", NoteRequired(note="回访不满意，重新办理")),
}


async def seed_demo_tickets(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Files the demo's tickets through the service, as its users would; returns how many."""
    users = {user.username: user for user in await session.scalars(select(User))}
    for n, (reporter, grid, category, description, urgent, steps) in enumerate(DEMO_TICKETS):
        west, south = ORIGIN_LON + grid * GRID_SIZE_DEG, ORIGIN_LAT
        event = EventIn(
            client_id=uuid.uuid5(uuid.NAMESPACE_URL, f"gridwork-demo-ticket-{n}"),
            category_code=category,
            description=description,
            lat=south + GRID_SIZE_DEG * (0.3 + 0.05 * n),
            lon=west + GRID_SIZE_DEG * 0.5,
            urgent=urgent,
        )
        ticket, _ = await report_event(session, users[reporter], event, settings, now)
        for step in steps:
            action, actor, body = _DEMO_ACTIONS[step]
            await perform_action(session, users[actor], ticket.id, action, body, settings, now)
    return len(DEMO_TICKETS)
