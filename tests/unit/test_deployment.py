"""The container image and docker-compose.yml, checked from their files: no Docker engine runs
where the tests run, so the image is not built here (`docker compose build` is the check on a
machine that has one)."""

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_the_service_user_owns_the_photo_store_and_nothing_else() -> None:
    lines = _dockerfile()
    env = " ".join(line for line in lines if line.startswith("ENV "))
    store = re.search(r"GRIDWORK_ATTACHMENTS_DIR=(\S+)", env)
    assert store is not None, "the image sets where photos are stored"
    users = [i for i, line in enumerate(lines) if line.startswith("USER ")]
    assert users and lines[users[-1]] == "USER gridwork"
    setup = " ".join(lines[: users[-1]])
    assert "useradd" in setup
    assert re.search(r'mkdir -p "?\$GRIDWORK_ATTACHMENTS_DIR', setup)
    assert re.search(r'chown gridwork:gridwork "?\$GRIDWORK_ATTACHMENTS_DIR', setup)
    assert "chown -R" not in setup  # the code stays the root's
    assert ".[dev]" not in setup  # no test tools in the image


def test_app_and_worker_share_one_image_a_photo_volume_and_restart() -> None:
    services = _compose()["services"]
    app, worker = services["app"], services["worker"]
    assert "build" in app and "build" not in worker
    assert app["image"] == worker["image"]
    store = "/var/lib/gridwork/attachments"
    for service in (app, worker, services["db"]):
        assert service["restart"] == "unless-stopped"
    for service in (app, worker):
        assert f"attachments:{store}" in service["volumes"]
    assert "attachments" in _compose()["volumes"]
    assert f"GRIDWORK_ATTACHMENTS_DIR={store}" in " ".join(_dockerfile())


def test_make_run_installs_what_running_needs_only() -> None:
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert "pip install --quiet -e ." in recipe and "[dev]" not in recipe
    assert re.search(r"^run: \$\(STAMP\)$", make, re.M)
    assert re.search(r"^test: \$\(DEV_STAMP\)$", make, re.M)


def test_the_scale_profile_puts_two_api_hosts_and_a_replica_behind_the_proxy() -> None:
    compose = _compose()
    services = compose["services"]
    scale = {name for name, service in services.items() if "scale" in service.get("profiles", [])}
    assert scale == {"replica", "app-2", "proxy"}
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    upstreams = re.findall(r"^\s*server (\S+):8000", site, re.M)
    assert upstreams == ["app", "app-2"]
    assert services["app-2"]["image"] == services["app"]["image"]
    assert services["app-2"]["environment"] == services["app"]["environment"]
    # The API trusts X-Forwarded-For from the proxy's fixed address alone.
    proxy_address = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert services["app"]["environment"]["FORWARDED_ALLOW_IPS"] == proxy_address
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert proxy_address.rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]
    # The standby is cloned from db, and db lets it stream.
    cloning = " ".join(services["replica"]["entrypoint"])
    assert "pg_basebackup -h db" in cloning and " -R " in cloning
    init = "./deploy/postgres/allow-replication.sh:/docker-entrypoint-initdb.d/"
    assert any(volume.startswith(init) for volume in services["db"]["volumes"])
    assert "GRIDWORK_DATABASE_REPLICA_URL" in services["app"]["environment"]
