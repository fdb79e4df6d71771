"""Statistics as CSV or XLSX tables, with English or Chinese column headers."""

import csv
import io
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from fastapi import Response
from openpyxl import Workbook
from pydantic import BaseModel

ZH_HEADERS = {
    "rank": "排名",
    "key": "分组",
    "score": "综合得分",
    "reported": "上报数",
    "accepted": "应结案数",
    "closed": "结案数",
    "closed_on_time": "按期结案数",
    "closure_rate": "结案率",
    "on_time_closure_rate": "按期结案率",
    "self_resolved": "自行处置数",
    "open": "未结案数",
    "overdue_open": "超期未结案数",
    "escalated": "上报升级数",
    "reworked": "返工数",
    "rework_rate": "返工率",
    "reopened": "重办数",
    "reopen_rate": "重办率",
    "resolved_in_community": "社区内解决数",
    "in_community_rate": "社区内解决率",
    "rated": "评价数",
    "satisfied": "满意数",
    "satisfaction_rate": "满意率",
    "avg_handling_hours": "平均处置时长(小时)",
    "name": "名称",
    # appraisal (考核)
    "username": "用户名",
    "display_name": "姓名",
    "grid_code": "网格",
    "reports": "上报数",
    "valid_reports": "有效上报数",
    "valid_rate": "有效上报率",
    "public_first": "公众先报数(漏报)",
    "missed_rate": "漏报率",
    "checks": "核实数",
    "checks_on_time": "按时核实数",
    "on_time_check_rate": "按时核实率",
    "verifications": "核查数",
    "verifications_on_time": "按时核查数",
    "on_time_verification_rate": "按时核查率",
    "patrol_days": "巡查天数",
    "department_code": "部门编码",
    "handled": "主办数",
    "on_time_rate": "按期结案率",
    "returned": "退单数",
    "assists": "协办数",
    "assists_done": "协办完成数",
}
POINTS = {"en": "points_{}", "zh": "{}得分"}
TOTAL = {"en": "total", "zh": "合计"}
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class Format(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class Lang(StrEnum):
    en = "en"
    zh = "zh"


def chosen_format(requested: Format | None, accept: str | None) -> Format:
    """`?format=` wins; otherwise an Accept header naming CSV or XLSX; otherwise JSON."""
    if requested is not None:
        return requested
    accept = accept or ""
    if "text/csv" in accept:
        return Format.csv
    if MEDIA_TYPES["xlsx"] in accept:
        return Format.xlsx
    return Format.json


def table(
    model: type[BaseModel], rows: Sequence[BaseModel], lang: Lang, total: BaseModel | None = None
) -> tuple[list[str], list[list[Any]]]:
    names = list(model.model_fields)
    headers = [ZH_HEADERS.get(n, n) if lang == Lang.zh else n for n in names]
    values = [[getattr(row, n) for n in names] for row in rows]
    if total is not None:
        values.append([TOTAL[lang] if n == "key" else getattr(total, n) for n in names])
    return headers, values


def explained_table(
    model: type[BaseModel], rows: Sequence[Any], terms: Sequence[str], lang: Lang
) -> tuple[list[str], list[list[Any]]]:
    """Appraisal items: their fields but `explain`, then each term's points in a column of its
    own, so that a spreadsheet shows how every score was made."""
    names = [n for n in model.model_fields if n != "explain"]
    headers = [ZH_HEADERS.get(n, n) if lang == Lang.zh else n for n in names]
    headers += [POINTS[lang].format(ZH_HEADERS.get(t, t) if lang == Lang.zh else t) for t in terms]
    values = []
    for item in rows:
        points = {part.term: part.points for part in item.explain}
        values.append([getattr(item, n) for n in names] + [points.get(t) for t in terms])
    return headers, values


def render(fmt: Format, name: str, headers: list[str], values: list[list[Any]]) -> Response:
    if fmt == Format.csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(headers)
        writer.writerows([["" if v is None else v for v in row] for row in values])
        body = ("\ufeff" + out.getvalue()).encode()  # the BOM lets Excel read it as UTF-8
    else:
        workbook = Workbook()
        sheet = workbook.active
        assert sheet is not None
        sheet.title = name[:31]  # the longest sheet name Excel accepts
        sheet.append(headers)
        for row in values:
            sheet.append(row)
        buffer = io.BytesIO()
        workbook.save(buffer)
        body = buffer.getvalue()
    return Response(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )
