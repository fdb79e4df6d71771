"""`gridwork`: the operator's command line."""

import asyncio
import getpass
import json
import logging
import logging.config
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role
from app.auth.schemas import UserCreate
from app.auth.service import create_user as create_user_service
from app.clock import SystemClock
from app.config import DEFAULT_SECRET_KEY, Settings, get_settings
from app.db import Database, is_sqlite
from app.demo import DEMO_PASSWORD, seed_demo, seed_demo_tickets
from app.errors import AppError
from app.observability import logging_config
from app.orgs.imports import ImportReport, import_org_units
from app.orgs.models import OrgUnit
from app.stats import generate, rollups
from app.timing.service import CalendarFileError, parse_calendar_csv, store_calendar_days
from app.worker import main as run_worker_main

cli = typer.Typer(help="Gridwork work-order service.", no_args_is_help=True)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def _in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Runs `work` in one transaction on the configured database and commits it."""
    database = Database.for_settings(get_settings())
    try:
        async with database.sessions() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await database.dispose()


async def _rebuild_rollups(session: AsyncSession, only_if_needed: bool) -> int | None:
    timezone = get_settings().timezone
    if only_if_needed and await rollups.built_for(session, timezone):
        return None
    return await rollups.rebuild(session, timezone)


@cli.command()
def migrate(revision: str = "head") -> None:
    """Bring the database to the newest schema (or to REVISION); at the newest, build the
    statistics rollups if they are not built for the configured time zone."""
    command.upgrade(alembic_config(get_settings().database_url), revision)
    if revision == "head":
        rows = asyncio.run(_in_session(lambda session: _rebuild_rollups(session, True)))
        if rows is not None:
            typer.echo(f"built the statistics rollups: {rows} rows")


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the HTTP API."""
    settings = get_settings()  # refuse to start on bad settings before forking workers
    _refuse_published_key(settings, host)
    uvicorn.run(
        "app.main:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config(settings.log_format == "json"),
        access_log=False,  # RequestContext writes one access line per request
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _refuse_published_key(settings: Settings, host: str) -> None:
    """The development key is published with the code: anyone could sign tokens with it. It
    is good only for a local SQLite file served on loopback (`make run`)."""
    if settings.secret_key != DEFAULT_SECRET_KEY:
        return
    if is_sqlite(settings.database_url) and host in LOOPBACK:
        return
    typer.echo(
        "refusing to serve: GRIDWORK_SECRET_KEY is the published development key. Set it to a "
        "secret of your own (e.g. `openssl rand -hex 32`); the development key serves only a "
        "local SQLite database on 127.0.0.1.",
        err=True,
    )
    raise typer.Exit(2)


async def _seed(tickets: bool) -> bool:
    async def seed(session: AsyncSession) -> bool:
        now = SystemClock().now()
        if not await seed_demo(session, now):
            return False
        if tickets:
            await seed_demo_tickets(session, get_settings(), now)
        return True

    return await _in_session(seed)


@cli.command("seed-demo")
def seed_demo_command(
    tickets: Annotated[
        bool, typer.Option(help="also file the demo's tickets, as its users would")
    ] = False,
) -> None:
    """Load the demo district (org units, departments, categories, one user of each role)."""
    if get_settings().env == "production":
        typer.echo("refusing to load demo users with a published password in production", err=True)
        raise typer.Exit(2)
    if asyncio.run(_seed(tickets)):
        typer.echo(f"demo data loaded; every demo user's password is {DEMO_PASSWORD!r}")
    else:
        typer.echo("demo data already present")


async def _create_user(data: UserCreate) -> None:
    await _in_session(lambda session: create_user_service(session, data, SystemClock().now()))


@cli.command("create-user")
def create_user(
    username: str,
    role: Annotated[Role, typer.Option()],
    org_unit: Annotated[str | None, typer.Option(help="org unit code")] = None,
    department: Annotated[str | None, typer.Option(help="department code (handlers)")] = None,
    display_name: Annotated[str | None, typer.Option()] = None,
    password: Annotated[
        str | None,
        typer.Option(help="read from a prompt when not given", envvar="GRIDWORK_NEW_PASSWORD"),
    ] = None,
) -> None:
    """Create a user (an admin needs no org unit)."""
    secret = password or getpass.getpass("password: ")
    try:
        data = UserCreate(
            username=username,
            password=secret,
            display_name=display_name or username,
            role=role,
            org_unit_code=org_unit,
            department_code=department,
        )
        asyncio.run(_create_user(data))
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    except ValueError as exc:  # pydantic validation
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created {role} {username}")


@cli.command()
def worker() -> None:
    """Run the scheduler (warnings, escalation, webhook delivery); any number may run."""
    settings = get_settings()
    logging.config.dictConfig(logging_config(settings.log_format == "json"))
    asyncio.run(run_worker_main(settings, SystemClock()))


async def _import_grids(collection: object) -> ImportReport:
    return await _in_session(
        lambda session: import_org_units(session, collection, SystemClock().now())
    )


@cli.command("import-grids")
def import_grids(file: Path) -> None:
    """Load or update org units and grid boundaries from a GeoJSON FeatureCollection
    (properties: code, name, level, parent_code). All or nothing; bad features are listed."""
    try:
        collection = json.loads(file.read_text(encoding="utf-8-sig"))
        report = asyncio.run(_import_grids(collection))
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        for problem in exc.errors or []:
            where = ".".join(str(part) for part in problem["loc"])
            typer.echo(f"  {where}: {problem['msg']}", err=True)
        raise typer.Exit(1) from exc
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{report.created} org units created, {report.updated} updated")


calendar_cli = typer.Typer(help="The working calendar's own days (holidays, adjusted workdays).")
cli.add_typer(calendar_cli, name="calendar")


async def _import_calendar(text: str) -> int:
    days = parse_calendar_csv(text)
    return await _in_session(lambda session: store_calendar_days(session, days))


@calendar_cli.command("import")
def calendar_import(file: Path) -> None:
    """Load days from a CSV of `date,work|off[,note]`, e.g. a year's official schedule the day
    it is announced: `2027-01-01,off,元旦` and `2027-02-07,work,春节调休`. Existing days are
    replaced; nothing is stored if any line is bad."""
    try:
        count = asyncio.run(_import_calendar(file.read_text(encoding="utf-8-sig")))
    except CalendarFileError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from exc
    except UnicodeDecodeError as exc:
        typer.echo("error: the file is not UTF-8; save it as UTF-8 CSV and try again", err=True)
        raise typer.Exit(1) from exc
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"stored {count} calendar days (deadlines started from now on count them)")


stats_cli = typer.Typer(help="Statistics: rollups and a generated district to measure them on.")
cli.add_typer(stats_cli, name="stats")


@stats_cli.command("rebuild")
def stats_rebuild() -> None:
    """Recompute the closure rollups from the tickets (after changing GRIDWORK_TIMEZONE, or
    after loading tickets outside the service). Ticket changes wait while it runs."""
    rows = asyncio.run(_in_session(lambda session: _rebuild_rollups(session, False)))
    typer.echo(f"rebuilt the statistics rollups: {rows} rows")


async def _generate(tickets: int, years: float, district: str | None, seed: int) -> None:
    settings = get_settings()
    now = SystemClock().now()
    if district is None:
        district = generate.GENERATED_DISTRICT

        async def build(session: AsyncSession) -> None:
            if await session.get(OrgUnit, district) is not None:
                raise ValueError(f"district {district} exists; add tickets with --district")
            await generate.build_district(session, now)

        await _in_session(build)
    await _in_session(
        lambda session: generate.generate_tickets(
            session, district, tickets, years, now, seed, settings.timezone, typer.echo
        )
    )


@stats_cli.command("generate")
def stats_generate(
    tickets: Annotated[int, typer.Option(min=1)] = 10_000_000,
    years: Annotated[float, typer.Option(min=0.01, max=20)] = 3.0,
    district: Annotated[
        str | None, typer.Option(help="add to this district instead of building district GD")
    ] = None,
    seed: int = 1,
) -> None:
    """Fill the database with a generated district (GD: 10 towns, 100 communities, 800 grids)
    and TICKETS tickets over the past YEARS, for trying out and measuring statistics. Tickets
    are written directly, not through the service: never run it on a production database."""
    try:
        asyncio.run(_generate(tickets, years, district, seed))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("done; the rollups are rebuilt")


def main() -> None:
    cli()
