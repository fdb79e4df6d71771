"""Where attachment bytes live, by SHA-256: a local directory by default. Another store (an
S3-compatible bucket) only needs `put`, `get` and `discard`."""

import contextlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Protocol

from starlette.concurrency import run_in_threadpool


class Storage(Protocol):
    async def put(self, digest: str, data: bytes) -> None:
        """Stores `data` under its SHA-256 `digest`; storing the same bytes again is a no-op."""

    async def get(self, digest: str) -> bytes | None: ...

    async def discard(self, digest: str, unused_since: datetime) -> bool:
        """Deletes the bytes stored under `digest` unless they were stored (or stored again)
        after `unused_since`; returns whether they are gone. The caller has made sure no
        attachment row names `digest`; an upload of the same bytes in flight has stored them
        again just before writing its row, so they are kept."""
        ...


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def _put(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        if path.exists():
            with contextlib.suppress(FileNotFoundError):  # discarded meanwhile: written below
                os.utime(path)  # stored again now: `discard` keeps it
                return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader never sees half a file.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as partial:
            partial.write(data)
        os.replace(partial.name, path)

    async def put(self, digest: str, data: bytes) -> None:
        await run_in_threadpool(self._put, digest, data)

    async def get(self, digest: str) -> bytes | None:
        path = self._path(digest)
        return await run_in_threadpool(path.read_bytes) if path.exists() else None

    def _discard(self, digest: str, unused_since: float) -> bool:
        path = self._path(digest)
        # Moved aside first: a `put` from now on writes a fresh file instead of touching this
        # one, and one that touched it just before shows in its time, so it is put back.
        aside = path.with_name(f"{path.name}.discarding.{os.getpid()}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return True
        if aside.stat().st_mtime > unused_since:
            os.replace(aside, path)  # the same bytes as anything written there meanwhile
            return False
        aside.unlink()
        return True

    async def discard(self, digest: str, unused_since: datetime) -> bool:
        return await run_in_threadpool(self._discard, digest, unused_since.timestamp())
