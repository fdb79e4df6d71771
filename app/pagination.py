"""Keyset pagination: `{"items": [...], "next_cursor": ...}` with an opaque cursor."""

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Integer, Select, bindparam, select, tuple_, union_all
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

    def newest_params(self) -> dict[str, Any]:
        """The values of `newest_first`'s parameters for this page."""
        params: dict[str, Any] = {"page_size": self.limit + 1}
        if (after := self.after()) is not None:
            params["page_after_at"], params["page_after_id"] = _time_and_id(after)
        return params

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

    def page_of_newest(
        self, rows: Sequence[Mapping[str, Any]], at: str, id_: str, render: Callable[[Any], T]
    ) -> Page[T]:
        """A page of the mapping rows of a `newest_first` statement (`at` and `id_` their
        keys)."""
        return self.page(rows, lambda r: [r[at].isoformat(), r[id_]], render)

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
        statement = newest_first(query, at, id_, after=self.cursor is not None)
        result = await session.execute(statement, self.newest_params())
        rows = result.scalars().all() if len(result.keys()) == 1 else result.all()
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


# A column of a table or of its mapped class.
Column = ColumnElement[T] | InstrumentedAttribute[T]


def newest_first(
    query: Select[Any], at: Column[datetime], id_: Column[int], *, after: bool
) -> Select[Any]:
    """`query`'s first `page_size` rows newest first by (`at`, `id_`), after the key
    (`page_after_at`, `page_after_id`) when `after`: all bound (`PageParams.newest_params`), so
    that one statement serves every page."""
    if after:
        key = bindparam("page_after_at", type_=at.type), bindparam("page_after_id", type_=id_.type)
        query = query.where(tuple_(at, id_) < tuple_(*key))
    return query.order_by(at.desc(), id_.desc()).limit(bindparam("page_size", type_=Integer))


def newest_first_of(
    queries: Sequence[Select[Any]],
    at: Column[datetime],
    id_: Column[int],
    *,
    after: bool,
) -> Select[Any]:
    """`newest_first` over queries that share no row (of one, `newest_first`): each is paged
    on its own, so each can read its own index in order (an OR of their conditions would read
    every matching row and sort them)."""
    if len(queries) == 1:
        return newest_first(queries[0], at, id_, after=after)
    parts = union_all(
        *(select(newest_first(q, at, id_, after=after).subquery()) for q in queries)
    ).subquery()
    return newest_first(select(parts), parts.c[str(at.key)], parts.c[str(id_.key)], after=False)


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
