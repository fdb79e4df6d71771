"""Two API hosts behind nginx with the configuration that docker-compose.yml's `scale` profile
mounts (`deploy/nginx.conf`), its upstreams pointed at two servers of the app on local ports:
requests are shared between the hosts, the console's stream passes unbuffered, and a host
that stops leaves the other serving."""

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from tests.helpers import Api
from tests.live import LiveServer
from tests.pg_cluster import free_port

ROOT = Path(__file__).parents[2]
MAIN = """
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/gridwork.conf;
}}
"""


@pytest.fixture
def hosts(world: Database, settings: Settings, clock: FrozenClock) -> Iterator[list[LiveServer]]:
    served = settings.model_copy(update={"console_stream_seconds": 60.0})
    servers = [LiveServer(served, clock), LiveServer(served, clock)]
    yield servers
    for server in servers:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture
def proxy(hosts: list[LiveServer]) -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (apt-get install nginx)")
    port = free_port()
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site = site.replace("server app:8000", f"server 127.0.0.1:{hosts[0].port}")
    site = site.replace("server app-2:8000", f"server 127.0.0.1:{hosts[1].port}")
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    with tempfile.TemporaryDirectory(prefix="gridwork-nginx-") as workdir:
        (Path(workdir) / "gridwork.conf").write_text(site)
        (Path(workdir) / "nginx.conf").write_text(MAIN.format(dir=workdir))
        command = [nginx, "-p", workdir, "-c", f"{workdir}/nginx.conf", "-g", "daemon off;"]
        server = subprocess.Popen(command, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"nginx did not start: {server.stderr}") from None
                    time.sleep(0.05)  # waiting for another process to listen
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


async def test_requests_are_shared_between_the_hosts_and_survive_one_stopping(
    hosts: list[LiveServer], proxy: str
) -> None:
    counters = [host.count_statements() for host in hosts]
    async with httpx.AsyncClient(base_url=proxy, timeout=10) as client:
        api = Api(client)
        for _ in range(20):
            response = await api.get("/api/v1/users/me", "dispatcher")
            assert response.status_code == 200
        assert all(counter[0] > 0 for counter in counters)  # each host read some callers

        hosts[0].stop()
        statuses = [
            (await api.get("/api/v1/users/me", "dispatcher")).status_code for _ in range(10)
        ]
        assert statuses == [200] * 10
        assert (await client.get("/metrics")).status_code == 404  # not through the proxy


async def test_the_console_stream_passes_the_proxy_as_it_comes(
    hosts: list[LiveServer], proxy: str
) -> None:
    async with httpx.AsyncClient(base_url=proxy, timeout=30) as client:
        api = Api(client)
        issued = await client.post(
            "/console/stream-ticket", headers=await api.headers("dispatcher")
        )
        params = {"ticket": issued.json()["ticket"]}
        async with client.stream("GET", "/console/stream", params=params) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            first = await anext(line async for line in lines if line.startswith("id: "))
            await api.report()
            # Long before the stream's 60 s are over: nginx does not hold it back.
            news = await asyncio.wait_for(
                anext(line async for line in lines if line.startswith("id: ")), 15
            )
    assert news != first
