"""Reads on hot standbys (PostgreSQL streaming replicas).

Statistics, appraisals, exports and ticket lists may be a few seconds behind; every write, and
every read that must see the caller's own writes, stays on the primary. Each process measures
each replica's lag every `replica_check_seconds`: a replica further behind than
`replica_max_lag_seconds`, unreachable, or no longer a standby is not read until a later check
finds it fit again. Reads then go to the primary's read connections by themselves.

A caller who wrote through this process within `replica_max_lag_seconds` reads from the primary
too (keyed by their bearer token), so that a list reloaded right after an action shows it. A
process does not know of writes made through another one.
"""

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

# Seconds the replica's replay is behind: 0 when it has replayed all it received (an idle
# primary sends nothing), else since the last transaction it replayed committed; NULL when it
# is not a standby (promoted), receives nothing (no WAL receiver runs: cut off from the
# primary, what it received stays what it has, and would pass for current), or has replayed
# nothing yet. `pg_stat_wal_receiver` has its row while a receiver runs, whoever asks.
LAG = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL"
    " WHEN NOT EXISTS (SELECT FROM pg_stat_wal_receiver) THEN NULL"
    " WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0"
    " ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END"
)
CHECK_TIMEOUT_SECONDS = 2.0


def replica_name(url: str) -> str:
    """How a replica is named in logs and metrics: host, port and database, no credentials."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass
class Replica:
    name: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    checker: AsyncEngine = field(repr=False)  # its own connection, not behind the requests
    # The lag measured last (None: unreachable or not a standby) and whether it is read.
    lag: float | None = None
    in_use: bool = False

    async def connects(self, session: AsyncSession) -> bool:
        """Opens the session's connection; a replica that refuses is out of use until a check
        finds it back, and the request goes to the primary."""
        try:
            await session.connection()
        except (DBAPIError, OSError, InvalidatePoolError) as exc:
            await self.retire(f"a request could not connect: {exc}")
            return False
        return True

    async def retire(self, why: str, lag: float | None = None) -> None:
        """Out of use until a check finds it fit. When it is unreachable (no `lag`), its pooled
        connections are closed: a replica that went away leaves them dead for the first
        requests after its return."""
        if self.in_use:
            log.warning("replica %s is not read: %s", self.name, why)
            self.in_use = False
            if lag is None:
                await self.engine.dispose()
        self.lag = lag


class Replicas:
    """The replicas of one process, the lag of each, and who wrote recently."""

    def __init__(
        self,
        replicas: list[Replica],
        max_lag_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replicas = replicas
        self.max_lag_seconds = max_lag_seconds
        self.monotonic = monotonic
        self._turns = itertools.count()
        self._writers: dict[str, float] = {}  # bearer token -> when their last write ended

    async def check(self) -> None:
        await asyncio.gather(*(self._check(replica) for replica in self.replicas))

    async def _check(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                async with replica.checker.connect() as connection:
                    lag = (await connection.execute(LAG)).scalar()
        except (DBAPIError, OSError, TimeoutError) as exc:
            await replica.retire(f"the lag check failed: {exc!r}")
            return
        if lag is None:
            await replica.retire("it is not a standby, receives nothing, or has replayed nothing")
        elif lag > self.max_lag_seconds:
            await replica.retire(f"{lag:.1f} s behind", float(lag))
        else:
            if not replica.in_use:
                log.warning("replica %s is read again: %.1f s behind", replica.name, lag)
            replica.in_use, replica.lag = True, float(lag)

    async def watch(self, every_seconds: float, stop: asyncio.Event) -> None:
        """Checks the replicas until `stop` is set."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception:  # the next check may fare better; reads meanwhile as they were
                log.exception("checking the replicas failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_seconds)

    def note_write(self, token: str | None) -> None:
        if not token or not self.replicas:
            return
        now = self.monotonic()
        self._writers[token] = now
        if len(self._writers) > 10_000:  # forget those whose window has passed
            since = now - self.max_lag_seconds
            self._writers = {t: at for t, at in self._writers.items() if at >= since}

    def choose(self, token: str | None) -> Replica | None:
        """A replica in use, in turn, for a caller who has not just written; else None."""
        wrote_at = self._writers.get(token) if token else None
        if wrote_at is not None and self.monotonic() - wrote_at <= self.max_lag_seconds:
            return None
        in_use = [replica for replica in self.replicas if replica.in_use]
        if not in_use:
            return None
        return in_use[next(self._turns) % len(in_use)]

    def figures(self) -> list[tuple[str, float | None, bool]]:
        return [(replica.name, replica.lag, replica.in_use) for replica in self.replicas]
