"""`gridwork`: the operator's command line."""

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from alembic import command
from alembic.config import Config

from app.auth.models import Role
from app.auth.schemas import UserCreate
from app.auth.service import create_user as create_user_service
from app.clock import SystemClock
from app.config import get_settings
from app.db import Database
from app.demo import DEMO_PASSWORD, seed_demo
from app.errors import AppError

cli = typer.Typer(help="Gridwork work-order service.", no_args_is_help=True)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@cli.command()
def migrate(revision: str = "head") -> None:
    """Bring the database to the newest schema (or to REVISION)."""
    command.upgrade(alembic_config(get_settings().database_url), revision)


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the HTTP API."""
    get_settings()  # refuse to start on bad settings before forking workers
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers)


async def _seed() -> bool:
    database = Database(get_settings().database_url)
    try:
        async with database.sessions() as session:
            created = await seed_demo(session, SystemClock().now())
            await session.commit()
            return created
    finally:
        await database.dispose()


@cli.command("seed-demo")
def seed_demo_command() -> None:
    """Load the demo district (org units, departments, categories, one user of each role)."""
    if asyncio.run(_seed()):
        typer.echo(f"demo data loaded; every demo user's password is {DEMO_PASSWORD!r}")
    else:
        typer.echo("demo data already present")


async def _create_user(data: UserCreate) -> None:
    database = Database(get_settings().database_url)
    try:
        async with database.sessions() as session:
            await create_user_service(session, data, SystemClock().now())
            await session.commit()
    finally:
        await database.dispose()


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


def main() -> None:
    cli()
