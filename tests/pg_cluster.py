"""PostgreSQL clusters of one's own on local ports: a primary and its streaming standby
(`pg_basebackup -R`), made from the server binaries in a temporary directory and removed
afterwards. The tests of replicas and the replica benchmark use them; neither touches the
machine's own cluster. As root, the server runs as the `postgres` user (it refuses root)."""

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

SERVER_PROGRAMS = ("initdb", "pg_ctl", "pg_basebackup")


def server_binaries() -> Path | None:
    """The directory of PostgreSQL's server programs (Debian keeps them out of PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if on_path := shutil.which("initdb"):
        candidates.insert(0, Path(on_path).parent)
    for directory in candidates:
        if all((directory / program).exists() for program in SERVER_PROGRAMS):
            return directory
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    binaries: Path
    data: Path
    port: int

    def run(self, program: str, *args: str) -> str:
        command = [str(self.binaries / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr or done.stdout}")
        return done.stdout

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data}"
        log = str(self.data / "server.log")
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


# A throwaway cluster: no durability, little memory, quick checkpoints.
PRIMARY_SETTINGS = """
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 4
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
max_connections = 200
"""


@contextmanager
def primary_and_standby() -> Iterator[tuple[Cluster, Cluster]]:
    """A running primary and a hot standby streaming from it."""
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError("PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup)")
    root = Path(tempfile.mkdtemp(prefix="gridwork-clusters-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    primary = Cluster(binaries, root / "primary", free_port())
    standby = Cluster(binaries, root / "standby", free_port())
    try:
        primary.run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust")
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write(PRIMARY_SETTINGS)
        primary.start()
        standby.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(standby.data), "-R", "-X", "stream", "-c", "fast"),
        )
        standby.start()
        yield primary, standby
    finally:
        for cluster in (standby, primary):
            if cluster.running:
                with suppress(RuntimeError):
                    cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
