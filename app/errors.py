"""Typed application errors, rendered as RFC 9457 problem details in one place (`main.py`)."""

from typing import Any

from pydantic import BaseModel, Field


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


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Too large"


class UnsupportedMedia(AppError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(AppError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response under /api/v1."""

    type: str = Field(examples=["/problems/illegal-transition"])
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = Field(default=None, description="validation failures")


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem_response("missing, invalid or revoked bearer token"),
    403: _problem_response("the caller's role may not do this"),
    404: _problem_response("unknown id, or outside the caller's scope"),
    409: _problem_response("illegal transition, stale expected_version or duplicate code"),
    422: _problem_response("invalid request"),
}
