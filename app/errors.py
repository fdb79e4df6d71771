"""Typed application errors, rendered as RFC 9457 problem details in one place (`main.py`)."""

from typing import Any


class AppError(Exception):
    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def type(self) -> str:
        return f"/problems/{self.slug}"


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Not authenticated"

    def __init__(self, detail: str = "missing or invalid bearer token", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class IllegalTransition(Conflict):
    slug, title = "illegal-transition", "Action not allowed in this status"


class StaleVersion(Conflict):
    slug, title = "stale-version", "The ticket has changed"


class Invalid(AppError):
    status, slug, title = 422, "validation-error", "Invalid request"

    def __init__(self, detail: str, *, loc: list[str | int] | None = None, **kw: Any) -> None:
        if loc is not None:
            kw.setdefault("errors", [{"loc": loc, "msg": detail}])
        super().__init__(detail, **kw)


class TooManyRequests(AppError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"
