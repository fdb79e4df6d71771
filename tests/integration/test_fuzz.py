"""Schemathesis generates requests from the app's own OpenAPI schema and sends them, as the
demo admin, to the app served over HTTP: no answer may be a 500 or break the schema. The
number of examples per operation is bounded (GRIDWORK_FUZZ_EXAMPLES, 10 by default) so that
`make test` stays within minutes."""

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
