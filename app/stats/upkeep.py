"""What the closure and appraisal rollups' upkeep share: the values a changed row had and
has, and the upsert that adds signed amounts to rollup rows."""

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, inspect
from sqlalchemy.dialects import postgresql, sqlite

from app.direct import DirectStatement


def values_of(target: Any, names: Iterable[str], before: bool = False) -> dict[str, Any]:
    """The row's values now (after a flush, a column given a SQL expression is read back), or
    as the database held them before this flush: the values it was loaded with (an updated
    row's UPDATE checks its version, so they are still the stored ones)."""
    if not before:
        return {name: getattr(target, name) for name in names}
    state = inspect(target)
    values = {}
    for name in names:
        history = state.attrs[name].history
        stored = history.deleted or history.unchanged
        if not stored:
            raise RuntimeError(f"{target!r}: {name} was changed without being loaded")
        values[name] = stored[0]
    return values


def adding_upsert(dialect: str, table: Any, key: Iterable[str], added: Iterable[str]) -> Insert:
    """An INSERT of rollup rows that, for a key already stored, adds the `added` measures."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    insert = dialect_insert(table)
    columns = table.__table__.c
    return insert.on_conflict_do_update(
        index_elements=list(key),
        set_={name: columns[name] + insert.excluded[name] for name in added},
    )


@lru_cache(maxsize=16)
def direct(statement: Insert) -> DirectStatement:
    """An upsert built once per shape, run by `app/direct.py`."""
    return DirectStatement(statement)
