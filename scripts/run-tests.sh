#!/usr/bin/env bash
# Runs the suite on SQLite, then on PostgreSQL when it answers.
# The PostgreSQL run creates (and drops) a fresh database of its own; it is required when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN_URL="${GRIDWORK_TEST_PG_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/postgres}"

# The console's end-to-end tests drive Debian's chromium, with a font for its Chinese text;
# the proxy's test runs nginx with deploy/nginx.conf.
if { ! command -v chromium || ! [ -x /usr/sbin/nginx ]; } >/dev/null \
    && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing chromium and nginx for the end-to-end tests"
    packages=(chromium fonts-wqy-microhei nginx)
    apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; }
fi

echo "== test suite on SQLite"
TEST_DATABASE_URL="sqlite+aiosqlite://" python -m pytest "$@"

if python scripts/pg_reachable.py "$PG_ADMIN_URL"; then
    echo "== test suite on PostgreSQL"
    TEST_DATABASE_URL="$PG_ADMIN_URL" python -m pytest "$@"
elif [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL is not reachable at $PG_ADMIN_URL, and CI requires the PostgreSQL run." >&2
    exit 1
else
    echo "== PostgreSQL not reachable at $PG_ADMIN_URL: skipped the PostgreSQL run"
fi
