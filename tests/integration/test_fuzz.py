"""Schemathesis generates requests from the app's own OpenAPI schema and sends them, as the
demo admin, to the app served over HTTP: no answer may be a 500 or break the schema. The
number of examples per operation is bounded (GRIDWORK_FUZZ_EXAMPLES, 10 by default) so that
`make test` stays within minutes."""

import base64
import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.demo import DEMO_PASSWORD
from tests.conftest import START, TEST_SECRET
from tests.live import LiveServer

EXAMPLES = int(os.environ.get("GRIDWORK_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def live(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    served = Settings(
        env="test",
        database_url=database.url,
        secret_key=TEST_SECRET,
        access_token_minutes=60,
        attachments_dir=str(tmp_path_factory.mktemp("attachments")),
    )
    server = LiveServer(served, FrozenClock(START))
    yield server
    server.stop()


@pytest.fixture
def admin(live: LiveServer, world: Database) -> dict[str, str]:
    token = httpx.post(
        f"{live.url}/api/v1/auth/token", data={"username": "admin", "password": DEMO_PASSWORD}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_no_server_error_and_no_response_outside_the_schema(
    live: LiveServer, admin: dict[str, str]
) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    # Signing the admin out, or disabling it, would leave the rest of the run unauthenticated.
    operations = schema.exclude(path_regex=r"^/api/v1/users/\{username\}").get_all_operations()
    failures: dict[str, str] = {}
    tried = 0
    for result in operations:
        operation = result.ok()
        tried += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=admin, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as failure:  # try all; report every failure
            failures[operation.label] = str(failure)[:600]
    assert tried > 50  # every operation of the API but the excluded ones
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())


NESTED_CURSOR = base64.urlsafe_b64encode(b'{"k":' + b"[" * 3000 + b"]" * 3000 + b"}").decode()
# Values that once made a route answer 500, for every parameter of their kind.
SHAPES: dict[str, object] = {
    "integer": 2**70,
    "cursor": NESTED_CURSOR,
    "date": "9999-12-31",
}


def _shaped(parameter: dict[str, object]) -> object | None:
    schema = parameter.get("schema") or {}
    assert isinstance(schema, dict)
    kinds = [schema.get("type"), schema.get("format")]
    kinds += [s.get("format") for s in schema.get("anyOf", []) if isinstance(s, dict)]
    if parameter["name"] == "cursor":
        return SHAPES["cursor"]
    if "date" in kinds:
        return SHAPES["date"]
    if "integer" in kinds:
        return SHAPES["integer"]
    return None


def test_the_shapes_that_once_crashed_answer_no_server_error_anywhere(
    live: LiveServer, admin: dict[str, str]
) -> None:
    """A nested cursor, a day at the calendar's end and an id past 64 bits, in every
    parameter that takes one, on every route that reads: refused, or (a calendar day) read."""
    spec = httpx.get(f"{live.url}/openapi.json").json()
    answers: dict[str, int] = {}
    for path, methods in spec["paths"].items():
        if "get" not in methods:
            continue
        parameters = methods["get"].get("parameters", [])
        shaped = {p["name"]: _shaped(p) for p in parameters}
        if not any(value is not None for value in shaped.values()):
            continue
        url = path
        query = {}
        for parameter in parameters:
            value = shaped[parameter["name"]] or "x"
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", str(value))
            elif shaped[parameter["name"]] is not None or parameter.get("required"):
                query[parameter["name"]] = str(value)
        response = httpx.get(f"{live.url}{url}", params=query, headers=admin)
        answers[path] = response.status_code
    assert len(answers) > 10
    assert {path: code for path, code in answers.items() if code >= 500} == {}
    assert answers["/api/v1/stats/closure"] == answers["/api/v1/tickets"] == 422
