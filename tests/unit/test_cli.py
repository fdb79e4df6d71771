"""The gridwork command against a SQLite file, as an operator would use it."""

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from app.cli import cli
from app.config import get_settings
from app.main import GC_FIRST_GENERATION_THRESHOLD
from app.observability import JsonFormatter


@pytest.fixture
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("GRIDWORK_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_migrate_seed_and_create_user(sqlite_file: Path) -> None:
    runner = CliRunner()

    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    first = runner.invoke(cli, ["seed-demo"])
    again = runner.invoke(cli, ["seed-demo"])
    created = runner.invoke(
        cli,
        [
            "create-user",
            "li.lei",
            "--role",
            "grid_worker",
            "--org-unit",
            "GC02-2",
            "--password",
            "long-enough-pw",
        ],
    )
    refused = runner.invoke(
        cli,
        [
            "create-user",
            "han.mei",
            "--role",
            "grid_worker",
            "--org-unit",
            "GC02",
            "--password",
            "long-enough-pw",
        ],
    )

    assert first.exit_code == 0 and "gridwork-demo" in first.output
    assert again.exit_code == 0 and "already" in again.output
    assert created.exit_code == 0, created.output
    assert refused.exit_code == 1 and "must be a grid" in refused.output


def test_serve_refuses_the_default_secret_in_production(
    sqlite_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDWORK_ENV", "production")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code != 0
    assert "GRIDWORK_SECRET_KEY" in str(result.exception)


def test_calendar_import(sqlite_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    good = tmp_path / "2027.csv"
    good.write_text(
        "date,working,note\n2027-01-01,off,元旦\n2027-02-07,work,春节调休\n", encoding="utf-8"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("2027-01-01,off\n2027-13-01,off\n2027-01-02,maybe\n", encoding="utf-8")

    stored = runner.invoke(cli, ["calendar", "import", str(good)])
    again = runner.invoke(cli, ["calendar", "import", str(good)])
    refused = runner.invoke(cli, ["calendar", "import", str(bad)])

    assert stored.exit_code == 0 and "stored 2" in stored.output
    assert again.exit_code == 0  # replacing days is fine
    assert refused.exit_code == 1
    assert "line 2" in refused.output and "line 3" in refused.output


def test_calendar_import_refuses_duplicates_and_non_utf8(sqlite_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    twice = tmp_path / "twice.csv"
    twice.write_text("2027-01-01,off\n2027-01-01,work\n", encoding="utf-8")
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("2027-01-01,off,元旦\n".encode("gbk"))

    duplicated = runner.invoke(cli, ["calendar", "import", str(twice)])
    encoded = runner.invoke(cli, ["calendar", "import", str(gbk)])

    assert duplicated.exit_code == 1 and "already on line 1" in duplicated.output
    assert encoded.exit_code == 1 and "UTF-8" in encoded.output


def test_import_grids(sqlite_file: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    sample = tmp_path / "district.geojson"
    generated = subprocess.run(
        [
            sys.executable,
            "scripts/generate_grids.py",
            "--code",
            "ZJ",
            "--towns",
            "1",
            "--communities",
            "1",
            "--grids",
            "2",
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    sample.write_text(generated.stdout, encoding="utf-8")
    broken = tmp_path / "broken.geojson"
    doc = json.loads(generated.stdout)
    doc["features"][-1]["geometry"] = None
    broken.write_text(json.dumps(doc), encoding="utf-8")

    imported = runner.invoke(cli, ["import-grids", str(sample)])
    refused = runner.invoke(cli, ["import-grids", str(broken)])

    assert imported.exit_code == 0 and "5 org units created" in imported.output
    assert refused.exit_code == 1 and "features.4.geometry" in refused.output


def test_stats_generate_and_rebuild(sqlite_file: Path) -> None:
    runner = CliRunner()
    migrated = runner.invoke(cli, ["migrate"])
    generated = runner.invoke(cli, ["stats", "generate", "--tickets", "300", "--years", "1"])
    again = runner.invoke(cli, ["stats", "generate", "--tickets", "10"])
    added = runner.invoke(cli, ["stats", "generate", "--tickets", "10", "--district", "GD"])
    nowhere = runner.invoke(cli, ["stats", "generate", "--tickets", "10", "--district", "XX"])
    rebuilt = runner.invoke(cli, ["stats", "rebuild"])

    assert "built the statistics rollups" in migrated.output
    assert generated.exit_code == 0 and "300 tickets" in generated.output, generated.output
    assert again.exit_code == 1 and "exists" in again.output
    assert added.exit_code == 0
    assert nowhere.exit_code == 1 and "no district 'XX'" in nowhere.output
    assert rebuilt.exit_code == 0 and "rebuilt the statistics rollups" in rebuilt.output
    with sqlite3.connect(sqlite_file) as db:
        assert db.execute("SELECT count(*) FROM tickets").fetchone() == (310,)
        assert db.execute("SELECT count(*) FROM org_units WHERE level = 'grid'").fetchone() == (
            800,
        )
        reported = "SELECT sum(reported) FROM closure_rollups WHERE grain = ?"
        assert db.execute(reported, ("m",)).fetchone() == (310,)
        assert db.execute(reported, ("d",)).fetchone() == (310,)


def test_serve_asks_uvicorn_to_drain_on_shutdown_and_log_json(
    sqlite_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options))
    monkeypatch.setenv("GRIDWORK_SHUTDOWN_GRACE_SECONDS", "45")
    get_settings.cache_clear()

    assert CliRunner().invoke(cli, ["serve", "--workers", "2"]).exit_code == 0

    assert started["timeout_graceful_shutdown"] == 45 and started["workers"] == 2
    assert started["factory"] is True
    assert started["access_log"] is False  # the app writes its own access lines
    formatter = started["log_config"]["formatters"]["main"]
    assert formatter["()"] is JsonFormatter


def test_serve_builds_each_process_with_its_start_up_frozen_out_of_collections(
    sqlite_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    assert CliRunner().invoke(cli, ["serve"]).exit_code == 0
    module, factory = served[0].split(":")
    # in a process of its own: the collector's settings are the whole process's
    program = (
        f"import gc; from {module} import {factory}; {factory}(); "
        "print(gc.get_freeze_count() > 10_000, gc.get_threshold()[0])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert shown.stdout.split() == ["True", str(GC_FIRST_GENERATION_THRESHOLD)]


@pytest.mark.parametrize(
    ("database", "host", "key", "serves"),
    [
        ("sqlite", "127.0.0.1", None, True),  # make run
        ("sqlite", "0.0.0.0", None, False),
        ("postgresql", "127.0.0.1", None, False),
        ("postgresql", "0.0.0.0", "a-secret-of-our-own-that-is-long-enough", True),
    ],
)
def test_the_published_key_serves_only_a_local_sqlite_file_on_loopback(
    sqlite_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    database: str,
    host: str,
    key: str | None,
    serves: bool,
) -> None:
    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options))
    if database == "postgresql":
        monkeypatch.setenv("GRIDWORK_DATABASE_URL", "postgresql+asyncpg://gridwork@db/gridwork")
    if key:
        monkeypatch.setenv("GRIDWORK_SECRET_KEY", key)
    get_settings.cache_clear()

    result = CliRunner().invoke(cli, ["serve", "--host", host])

    assert (result.exit_code == 0) is serves and bool(started) is serves
    if not serves:
        assert result.exit_code == 2 and "published development key" in result.output


def test_demo_users_are_never_loaded_in_production(
    sqlite_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    monkeypatch.setenv("GRIDWORK_ENV", "production")
    monkeypatch.setenv("GRIDWORK_SECRET_KEY", "a-secret-of-our-own-that-is-long-enough")
    get_settings.cache_clear()

    result = runner.invoke(cli, ["seed-demo"])

    assert result.exit_code == 2 and "production" in result.output
    with sqlite3.connect(sqlite_file) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
