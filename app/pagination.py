"""Keyset pagination: `{"items": [...], "next_cursor": ...}` with an opaque cursor."""

import base64
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.errors import Invalid

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR = 200  # the service's cursors hold a key of a time and an id at most


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class PageParams(BaseModel):
    limit: int
    cursor: str | None

    def after(self) -> Any:
        """The key of the last item of the previous page, or None on the first page."""
        if self.cursor is None:
            return None
        try:
            return json.loads(base64.urlsafe_b64decode(self.cursor.encode()))["k"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise Invalid("cursor is not one this service issued", loc=["query", "cursor"]) from exc

    async def fetch(
        self,
        session: AsyncSession,
        query: Select[Any],
        key: InstrumentedAttribute[Any],
        render: Callable[[Any], T],
    ) -> Page[T]:
        """A page of `query` in ascending order of the unique column `key`."""
        if (after := self.after()) is not None:
            python_type = key.type.python_type
            if python_type is date and isinstance(after, str):
                try:
                    after = date.fromisoformat(after)
                except ValueError:
                    raise Invalid(
                        "cursor is not one this service issued", loc=["query", "cursor"]
                    ) from None
            fits = isinstance(after, python_type) and not isinstance(after, bool)
            if not fits or (isinstance(after, int) and not -(2**63) <= after < 2**63):
                raise Invalid("cursor is not one this service issued", loc=["query", "cursor"])
            query = query.where(key > after)
        rows = (await session.scalars(query.order_by(key).limit(self.limit + 1))).all()
        return self.page(rows, lambda row: getattr(row, key.key), render)

    def _newest_first(
        self,
        query: Select[Any],
        at: InstrumentedAttribute[datetime],
        id_: InstrumentedAttribute[int],
    ) -> Select[Any]:
        if (after := self.after()) is not None:
            query = query.where(tuple_(at, id_) < tuple_(*_time_and_id(after)))
        return query.order_by(at.desc(), id_.desc()).limit(self.limit + 1)

    def _page_newest(
        self,
        rows: Sequence[Any],
        at: InstrumentedAttribute[datetime],
        id_: InstrumentedAttribute[int],
        render: Callable[[Any], T],
    ) -> Page[T]:
        return self.page(
            rows, lambda r: [getattr(r, at.key).isoformat(), getattr(r, id_.key)], render
        )

    async def fetch_newest(
        self,
        session: AsyncSession,
        query: Select[Any],
        at: InstrumentedAttribute[datetime],
        id_: InstrumentedAttribute[int],
        render: Callable[[Any], T],
    ) -> Page[T]:
        """A page of `query`, newest first by (`at`, `id_`). A query of one entity gives its
        objects, a query of several columns its rows."""
        result = await session.execute(self._newest_first(query, at, id_))
        rows = result.scalars().all() if len(result.keys()) == 1 else result.all()
        return self._page_newest(rows, at, id_, render)

    async def fetch_newest_of(
        self,
        session: AsyncSession,
        queries: Sequence[Select[Any]],
        at: InstrumentedAttribute[datetime],
        id_: InstrumentedAttribute[int],
        render: Callable[[Any], T],
    ) -> Page[T]:
        """A page of the rows of several column queries that share no row, newest first: each
        query is paged on its own, so each can read its own index in order (an OR of their
        conditions would read every matching row and sort them)."""
        parts = union_all(
            *(select(self._newest_first(q, at, id_).subquery()) for q in queries)
        ).subquery()
        newest = parts.c[at.key].desc(), parts.c[id_.key].desc()
        rows = (await session.execute(select(parts).order_by(*newest).limit(self.limit + 1))).all()
        return self._page_newest(rows, at, id_, render)

    def page(self, rows: Sequence[R], key: Callable[[R], Any], render: Callable[[R], T]) -> Page[T]:
        """Renders a page from up to `limit + 1` rows fetched in key order."""
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        cursor = None
        if more and rows:
            raw = json.dumps({"k": key(rows[-1])}, default=str).encode()
            cursor = base64.urlsafe_b64encode(raw).decode()
        return Page(items=[render(r) for r in rows], next_cursor=cursor)


def _time_and_id(after: Any) -> tuple[datetime, int]:
    try:
        moment, row_id = after
        key = datetime.fromisoformat(moment), row_id
    except (TypeError, ValueError) as exc:
        raise Invalid("cursor is not one this service issued", loc=["query", "cursor"]) from exc
    if key[0].tzinfo is None or type(row_id) is not int or not 0 < row_id < 2**63:
        raise Invalid("cursor is not one this service issued", loc=["query", "cursor"])
    return key


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR, description="next_cursor of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]
