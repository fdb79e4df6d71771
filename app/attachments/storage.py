"""Where attachment bytes live, by SHA-256: a local directory by default. Another store (an
S3-compatible bucket) only needs `put` and `get`."""

import os
import tempfile
from pathlib import Path
from typing import Protocol

from starlette.concurrency import run_in_threadpool


class Storage(Protocol):
    async def put(self, digest: str, data: bytes) -> None:
        """Stores `data` under its SHA-256 `digest`; storing the same bytes again is a no-op."""

    async def get(self, digest: str) -> bytes | None: ...


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def _put(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        if path.exists():
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
