"""The newest ticket change, as one process knows it, for all of its console streams.

Every ticket change writes a history row. On PostgreSQL, the database announces each
statement's newest row at commit (`NOTIFY ticket_changes`, migration 0017), and a process
listens on one connection of its own, however many consoles it serves; after that connection
breaks it connects again and reads the newest id, so that nothing is missed. With replicas in
use, streams hear of a change once the replicas have replayed it (or after the lag allowed),
since the pages reload through them. On SQLite, one reader per process looks for the newest id
every `console_check_seconds`.
"""

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.db import Database
from app.tickets.models import TicketHistory

log = logging.getLogger(__name__)

CHANNEL = "ticket_changes"
RECONNECT_SECONDS = 1.0
LIVENESS_SECONDS = 30.0
REPLAY_POLL_SECONDS = 0.02
_NEWEST = select(func.max(TicketHistory.id))
_NEWEST_SQL = "SELECT max(id) FROM ticket_history"


class ChangeFeed:
    def __init__(self, database: Database, check_seconds: float) -> None:
        self.database = database
        self.check_seconds = check_seconds
        self.newest = 0
        self._next = asyncio.Event()  # set, and replaced, at each change
        self._known = asyncio.Event()  # `newest` has been read once
        self._task: asyncio.Task[None] | None = None
        self._announced: int | None = None  # announced, not yet replayed by the replicas
        self._waiting: asyncio.Task[None] | None = None

    async def refresh(self) -> int:
        """The newest change read now (for a page that opens: the process's view may be up to
        `check_seconds` old on SQLite)."""
        self._start()
        self._publish(await self._read_newest())
        return self.newest

    async def after(self, seen: int, wait_seconds: float) -> int:
        """The newest change once it differs from `seen`, or after `wait_seconds`."""
        self._start()
        await self._known.wait()
        if self.newest == seen:
            change = self._next
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(change.wait(), wait_seconds)
        return self.newest

    def _start(self) -> None:
        if self._task is None:
            runner = self._poll if self.database.is_sqlite else self._listen
            self._task = asyncio.create_task(runner())

    def _publish(self, newest: int) -> None:
        self._known.set()
        if newest != self.newest:
            self.newest = newest
            change, self._next = self._next, asyncio.Event()
            change.set()

    async def _read_newest(self) -> int:
        async with self.database.reads() as session:
            return await session.scalar(_NEWEST) or 0

    async def _poll(self) -> None:
        while True:
            try:
                self._publish(await self._read_newest())
            except Exception as exc:  # the streams wait for the next look, never for nothing
                log.warning("ticket changes: cannot read the newest (%s)", exc)
            await asyncio.sleep(self.check_seconds)

    async def _listen(self) -> None:
        dsn = make_url(self.database.url).set(drivername="postgresql")
        while True:
            try:
                connection = await asyncpg.connect(
                    dsn.render_as_string(hide_password=False),
                    server_settings={"application_name": "gridwork-changes"},
                )
            except Exception as exc:  # the server is down or refuses: try again
                log.warning("ticket changes: cannot listen (%s); again in a second", exc)
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            broken = asyncio.Event()
            try:
                connection.add_termination_listener(lambda _, ended=broken: ended.set())
                await connection.add_listener(CHANNEL, self._notified)
                # After LISTEN: a change committed meanwhile is read here or announced. Read
                # again at intervals: a connection cut without a word (a firewall's idle
                # timeout) is found out then, and nothing it missed is lost.
                while not broken.is_set():
                    newest = await asyncio.wait_for(connection.fetchval(_NEWEST_SQL), 10)
                    self._publish(newest or 0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(broken.wait(), LIVENESS_SECONDS)
                log.warning("ticket changes: the listening connection broke; listening again")
            except Exception as exc:  # whatever broke it, listen again
                log.warning("ticket changes: listening failed (%s); again in a second", exc)
            finally:
                connection.terminate()
            await asyncio.sleep(RECONNECT_SECONDS)

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if not payload.isdecimal():
            return
        if not any(replica.in_use for replica in self.database.replicas.replicas):
            self._publish(int(payload))
            return
        # The pages reload lists and statistics from the replicas: they hear of a change once
        # the replicas have it too, or after the lag allowed.
        self._announced = int(payload)
        if self._waiting is None or self._waiting.done():
            self._waiting = asyncio.create_task(self._publish_when_replayed())

    async def _publish_when_replayed(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.database.replicas.max_lag_seconds
        while (target := self._announced) is not None:
            if loop.time() < deadline and not await self._replayed(target):
                await asyncio.sleep(REPLAY_POLL_SECONDS)
                continue
            if self._announced == target:
                self._announced = None
            self._publish(target)
            deadline = loop.time() + self.database.replicas.max_lag_seconds

    async def _replayed(self, change: int) -> bool:
        for replica in self.database.replicas.replicas:
            if not replica.in_use:
                continue
            try:
                async with replica.sessions() as session:
                    if (await session.scalar(_NEWEST) or 0) < change:
                        return False
            except Exception:  # its check will take it out of use; the pages read elsewhere
                continue
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._waiting is not None:
            self._waiting.cancel()
        # A feed started again may run on another event loop.
        self._next, self._known = asyncio.Event(), asyncio.Event()
