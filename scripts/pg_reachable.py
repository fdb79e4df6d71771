"""Exit 0 when the PostgreSQL server of the given SQLAlchemy URL accepts a connection."""

import asyncio
import sys

import asyncpg
from sqlalchemy.engine import make_url


async def reachable(url: str) -> bool:
    parsed = make_url(url)
    try:
        conn = await asyncpg.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password,
            database=parsed.database or "postgres",
            timeout=3,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(reachable(sys.argv[1])) else 1)
