import json
import math
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.db import DEFAULT_TIMEZONE
from app.timing.calendar import parse_periods
from app.timing.limits import TimeLimit, TimeUnit

DEFAULT_SECRET_KEY = "insecure-development-secret-change-me"
# The appraisal's weights (API.md, "Appraisal"): GRIDWORK_APPRAISAL_WEIGHTS changes any of them.
APPRAISAL_WEIGHTS: dict[str, dict[str, float]] = {
    "grid_workers": {
        "valid_rate": 0.4,
        "missed_rate": 0.2,
        "on_time_check_rate": 0.2,
        "on_time_verification_rate": 0.2,
    },
    "departments": {
        "closure_rate": 0.3,
        "on_time_rate": 0.3,
        "rework_rate": 0.3,
        "satisfaction_rate": 0.1,
    },
}
MIN_WEBHOOK_SECRET = 16


class Settings(BaseSettings):
    """Every setting comes from a `GRIDWORK_`-prefixed environment variable."""

    model_config = SettingsConfigDict(env_prefix="GRIDWORK_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./gridwork.db"
    database_pool_size: int = Field(default=10, ge=1)
    database_replica_url: str = Field(
        default="",
        description="hot standbys of the PostgreSQL database, comma-separated: statistics, "
        "appraisals, exports and ticket lists are read there",
    )
    replica_max_lag_seconds: float = Field(
        default=5.0,
        gt=0,
        description="a replica further behind the primary than this is not read until it "
        "catches up",
    )
    replica_check_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often each process measures its replicas' lag"
    )
    reference_check_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="how often each process checks whether org units, departments, categories "
        "or the calendar have changed",
    )
    secret_key: str = DEFAULT_SECRET_KEY
    bootstrap_admin: str | None = Field(
        default=None, description="username:password of an admin created when there are no users"
    )
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=30, ge=1)
    login_max_failures: int = Field(default=10, ge=1)
    login_failure_window_minutes: int = Field(default=15, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    scheduler_interval_seconds: int = Field(default=15, ge=1)
    dispatch_limit_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    check_limit: str = Field(
        default="2 working_hours",
        description="how long a grid worker has to check a report on site (核实): VALUE UNIT",
    )
    verify_limit: str = Field(
        default="1 working_days",
        description="how long after a handler's feedback its verification (核查) counts as on "
        "time in the appraisal: VALUE UNIT",
    )
    reopen_days: int = Field(
        default=30, ge=1, le=3650, description="how long after closing a ticket may be reopened"
    )
    ticket_number_prefix: str = Field(default="NH", pattern=r"^[A-Z0-9]{1,8}$")
    timezone: str = DEFAULT_TIMEZONE
    working_periods: str = Field(
        default="09:00-12:00,13:30-18:00", description="local working periods of a working day"
    )
    scheduler_batch_size: int = Field(default=200, ge=1)
    embedded_worker: bool = Field(
        default=False, description="run the scheduler inside the API process (make run)"
    )
    webhook_urls: str = Field(default="", description="comma-separated URLs notified of events")
    webhook_secret: str | None = Field(default=None, description="signs webhook bodies (HMAC)")
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="attempts at delivering a webhook message before it becomes a dead letter",
    )
    webhook_max_age_hours: float = Field(
        default=24.0,
        gt=0,
        description="a webhook message still failing this long after it was written (or "
        "retried by an admin) becomes a dead letter",
    )
    contact_retention_days: int = Field(
        default=180,
        ge=1,
        le=36500,
        description="days after an Open311 request its citizen's contact details are purged",
    )
    unattached_upload_hours: int = Field(
        default=48,
        ge=1,
        le=24 * 3650,
        description="hours after which a photo never given to a ticket is deleted",
    )
    ranking_weights: str = Field(
        default="0.4,0.4,0.2",
        description="weights of closure rate, on-time closure rate and (1 - rework rate) in the "
        "ranking score",
    )
    appraisal_weights: str = Field(
        default="{}",
        description='weights of the appraisal scores, JSON {"grid_workers": {...}, '
        '"departments": {...}}: any subset of the terms API.md names (the rest keep their '
        "defaults)",
    )
    stats_rollups: bool = Field(
        default=True,
        description="read whole months of closure statistics from the rollups (false: always "
        "count the tickets; the rollups are kept either way)",
    )
    attachments_dir: str = Field(
        default="./attachments", description="directory of the local photo store"
    )
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    gps_drift_metres: float = Field(default=50.0, ge=0)
    merge_max_distance_metres: float = Field(
        default=500.0, gt=0, description="a duplicate is merged only into a ticket this close"
    )
    map_tiles_url: str = Field(
        default="",
        description="the console's map tiles, e.g. https://tile.example.org/{z}/{x}/{y}.png "
        "(empty: grid boundaries on a blank background, for closed networks)",
    )
    map_attribution: str = Field(default="", description="credit shown under the map tiles")
    console_check_seconds: float = Field(
        default=2.0,
        gt=0,
        description="how often a console stream checks that its page is still there; on "
        "SQLite, also how often each process looks for ticket changes (PostgreSQL announces "
        "them)",
    )
    console_stream_seconds: float = Field(
        default=25.0,
        gt=0,
        description="how long one console stream lasts before the page reconnects (under the "
        "shutdown grace period, so that a restart does not wait for it)",
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line, with the request id"
    )
    shutdown_grace_seconds: int = Field(
        default=30, ge=1, description="how long a stopping server lets requests in flight finish"
    )
    open311_requests_per_minute: int = Field(
        default=30, ge=1, description="requests an Open311 client key may file per minute"
    )
    open311_jurisdiction_id: str | None = Field(
        default=None, description="the jurisdiction_id Open311 clients send (any when unset)"
    )
    open311_contact: str = Field(
        default="", description="who Open311 client developers contact (service discovery)"
    )
    refresh_reuse_grace_seconds: int = Field(
        default=60,
        ge=0,
        description="a just-rotated refresh token still works this long, answering with the same "
        "successor (a phone resending after a lost reply)",
    )
    refresh_family_days: int = Field(
        default=90,
        ge=1,
        description="the longest a sign-in lasts however often its refresh token is rotated: "
        "then the user signs in again",
    )
    login_max_failures_per_address: int = Field(
        default=50,
        ge=1,
        description="failed sign-ins from one client address (IPv6: one /64) within "
        "GRIDWORK_LOGIN_FAILURE_WINDOW_MINUTES before the address is refused for "
        "GRIDWORK_LOGIN_LOCKOUT_MINUTES",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("working_periods")
    @classmethod
    def _valid_periods(cls, value: str) -> str:
        parse_periods(value)
        return value

    @field_validator("check_limit", "verify_limit")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        parse_limit(value)
        return value

    @property
    def check_time_limit(self) -> TimeLimit:
        return parse_limit(self.check_limit)

    @property
    def verify_time_limit(self) -> TimeLimit:
        return parse_limit(self.verify_limit)

    @field_validator("appraisal_weights")
    @classmethod
    def _valid_appraisal_weights(cls, value: str) -> str:
        parse_appraisal_weights(value)
        return value

    @property
    def appraisal_weight_values(self) -> dict[str, dict[str, float]]:
        return parse_appraisal_weights(self.appraisal_weights)

    @field_validator("webhook_urls")
    @classmethod
    def _valid_webhook_urls(cls, value: str) -> str:
        for url in (u.strip() for u in value.split(",") if u.strip()):
            if len(url) > 500 or not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL {url[:60]!r} is not an http(s) URL of at most 500")
        return value

    @field_validator("ranking_weights")
    @classmethod
    def _valid_weights(cls, value: str) -> str:
        weights = [float(w) for w in value.split(",")]
        if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("three non-negative weights, not all zero: closure,on_time,rework")
        return value

    @property
    def ranking_weight_values(self) -> tuple[float, float, float]:
        closure, on_time, rework = (float(w) for w in self.ranking_weights.split(","))
        return closure, on_time, rework

    @property
    def replica_urls(self) -> list[str]:
        return [url.strip() for url in self.database_replica_url.split(",") if url.strip()]

    @model_validator(mode="after")
    def _replicas_of_postgresql(self) -> "Settings":
        for url in self.replica_urls:
            if not url.startswith("postgresql") or self.database_url.startswith("sqlite"):
                raise ValueError(
                    "GRIDWORK_DATABASE_REPLICA_URL: replicas are PostgreSQL standbys "
                    "(postgresql+asyncpg://…) of a PostgreSQL GRIDWORK_DATABASE_URL"
                )
        return self

    @property
    def webhook_url_list(self) -> list[str]:
        return [url.strip() for url in self.webhook_urls.split(",") if url.strip()]

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> "Settings":
        """Webhooks are always signed: URLs without a secret refuse to start."""
        if self.webhook_url_list and len(self.webhook_secret or "") < MIN_WEBHOOK_SECRET:
            raise ValueError(
                "GRIDWORK_WEBHOOK_URLS is set: GRIDWORK_WEBHOOK_SECRET must be set too, to a "
                f"secret of at least {MIN_WEBHOOK_SECRET} characters shared with the receivers "
                "(webhooks are always signed)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> "Settings":
        if self.env == "production" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "GRIDWORK_SECRET_KEY must be set to a secret of your own in production"
            )
        if self.env == "production" and len(self.secret_key) < 32:
            raise ValueError("GRIDWORK_SECRET_KEY must be at least 32 characters in production")
        return self

    @property
    def bootstrap_credentials(self) -> tuple[str, str] | None:
        if not self.bootstrap_admin:
            return None
        username, sep, password = self.bootstrap_admin.partition(":")
        if not sep or not username or not password:
            raise ValueError("GRIDWORK_BOOTSTRAP_ADMIN must be username:password")
        return username, password


def parse_limit(text: str) -> TimeLimit:
    """A time limit written `VALUE UNIT`, e.g. `2 working_hours`."""
    value, _, unit = text.strip().partition(" ")
    if not value.isdigit() or unit.strip() not in TimeUnit.__members__:
        units = ", ".join(TimeUnit)
        raise ValueError(f"{text!r} is not a time limit: write VALUE UNIT, UNIT one of {units}")
    return TimeLimit(value=int(value), unit=TimeUnit(unit.strip()))


def parse_appraisal_weights(text: str) -> dict[str, dict[str, float]]:
    """The appraisal weights: the defaults, with those of the JSON `text` in their place. Each
    weight is a finite number >= 0, and each subject's weights add up to more than 0."""
    try:
        given = json.loads(text or "{}")
    except ValueError as exc:
        raise ValueError(f"appraisal weights are not JSON: {exc}") from exc
    if not isinstance(given, dict):
        raise ValueError('appraisal weights: write {"grid_workers": {...}, "departments": {...}}')
    weights = {subject: dict(terms) for subject, terms in APPRAISAL_WEIGHTS.items()}
    for subject, terms in given.items():
        if subject not in weights:
            raise ValueError(f"appraisal weights: unknown subject {subject!r}")
        if not isinstance(terms, dict):
            raise ValueError(f"appraisal weights of {subject}: an object of term: weight")
        for term, weight in terms.items():
            if term not in weights[subject]:
                known = ", ".join(weights[subject])
                raise ValueError(f"appraisal weights: {subject} has no term {term!r} ({known})")
            number = isinstance(weight, int | float) and not isinstance(weight, bool)
            if not number or not math.isfinite(weight) or weight < 0:
                raise ValueError(f"appraisal weight {subject}.{term} must be a number >= 0")
            weights[subject][term] = float(weight)
        if sum(weights[subject].values()) <= 0:
            raise ValueError(f"appraisal weights of {subject} must not all be 0")
    return weights


@lru_cache
def get_settings() -> Settings:
    return Settings()
