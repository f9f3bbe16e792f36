"""Schemathesis against the app in-process (CONTRACTS.md §7.2): GraphQL and the REST OpenAPI document.

Authenticated as a real caller over a seeded database, every generated request (valid and, for
REST, deliberately invalid) must get an answer that is not a server error.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from api_support import ALICE, bearer, seed, settings_for
from crabglamp.app import create_app
from crabglamp.db import make_engine

# A bundle is text, one JSON object per line: send what is generated for it as plain text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# Enough to cover every operation a few dozen ways while keeping the file around a minute.
REST_EXAMPLES = 40
GRAPHQL_EXAMPLES = 25


@pytest.fixture(scope="module")
def auth() -> dict[str, str]:
    return bearer(**ALICE)


@pytest.fixture(scope="module")
def fuzzed_app(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"

    async def seeded() -> None:
        engine = make_engine(url)
        try:
            await seed(engine)
        finally:
            await engine.dispose()

    asyncio.run(seeded())
    # The app builds its own engine in its lifespan, on schemathesis's event loop.
    yield create_app(settings_for(url))
    shutdown_lifespans()


# Errors a caller is meant to see (see crabglamp.api.graphql.permissions); any other error that
# comes from a resolver (it has a path) is a bug.
EXPECTED_CODES = {"FORBIDDEN", "BAD_USER_INPUT"}


def _graphql_answer_is_not_a_server_error(response: Any) -> None:
    assert response.status_code < 500, response.text
    for error in response.json().get("errors", []):
        if "path" in error:
            assert error.get("extensions", {}).get("code") in EXPECTED_CODES, error


def _call(case: Any, auth: dict[str, str]) -> None:
    # A copy: the call adds its own headers to the dict it is given.
    if case.operation.label.startswith(("GET ", "POST ")):
        case.call_and_validate(headers=dict(auth), checks=[not_a_server_error])
    else:
        # Schemathesis counts every resolver error as a server error, refusals included
        # (it trusts no authorisation code); ours carry a code and are expected.
        _graphql_answer_is_not_a_server_error(case.call(headers=dict(auth)))


def _fuzz(
    schema: Any, auth: dict[str, str], examples: int, modes: list[GenerationMode]
) -> set[str]:
    """Every operation, in every mode, `examples` times; returns the operations that ran."""
    operations = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations.add(operation.label)
        for mode in modes:
            # schemathesis's pytest loaders do not run under pytest 9; its strategies do.
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                _call(case, auth)

            check()
    return operations


def test_rest_api_never_answers_a_server_error(fuzzed_app: Any, auth: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", fuzzed_app)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    # (Schemathesis leaves out the document's own path.)
    assert _fuzz(schema, auth, REST_EXAMPLES, modes) == {"GET /api/usage", "POST /api/events"}


def test_graphql_never_answers_a_server_error(fuzzed_app: Any, auth: dict[str, str]) -> None:
    schema = schemathesis.graphql.from_asgi("/graphql", fuzzed_app, headers=auth)
    # One operation per root field.
    ran = _fuzz(schema, auth, GRAPHQL_EXAMPLES, [GenerationMode.POSITIVE])
    assert {"Query.usage", "Query.virtualKeys", "Query.requests", "Query.invoice"} <= ran, ran
