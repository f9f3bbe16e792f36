"""Lists of plain rows answered directly give graphql-core's own answer, errors included."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api_support import ALICE, MONTH, World, bearer
from benchmarks.api_bench import P1_DOCUMENT, REST_FIELDS_DOCUMENT
from crabglamp.api.graphql import execution
from crabglamp.api.graphql.execution import PURE_LIST, PlainRows, PlainRowsExecutor


@strawberry.enum
class Shade(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Row:
    name: str
    count: int
    shade: Shade
    note: str | None
    day: date

    @strawberry.field
    def loud(self) -> str:
        return self.name.upper()


class LateRow(Row):
    """A subclass: not exactly the type's class, so its list takes the normal path."""


def _rows() -> list[Row]:
    return [
        Row(name="a", count=1, shade=Shade.RED, note="first", day=date(2026, 10, 1)),
        Row(name="b", count=2, shade=Shade.BLUE, note=None, day=date(2026, 10, 2)),
    ]


@strawberry.type
class Day:
    """A day holding rows, as a month's days hold their models."""

    rows_of: strawberry.Private[list[Row]]
    day: date

    @strawberry.field(metadata=PURE_LIST)
    def rows(self, shade: str | None = None, at_least: int = 0) -> list[Row]:
        return [
            r
            for r in self.rows_of
            if (shade is None or r.shade.value == shade) and r.count >= at_least
        ]

    @strawberry.field(metadata=PURE_LIST)
    def broken(self) -> list[Row]:
        if self.day.day == 2:
            raise ValueError("no rows on the second")
        return self.rows_of

    @strawberry.field
    def unmarked(self) -> list[Row]:
        return self.rows_of


def _days() -> list[Day]:
    return [Day(rows_of=_rows(), day=date(2026, 10, n)) for n in (1, 2, 3)]


@strawberry.type
class Query:
    @strawberry.field
    def rows(self) -> list[Row]:
        return _rows()

    @strawberry.field
    def days(self) -> list[Day]:
        return _days()

    @strawberry.field
    def unnamed(self) -> list[Row]:
        # A None where the schema promises a String!: the normal path's error, at its path.
        rows = _rows()
        rows[1].name = None  # type: ignore[assignment]
        return rows

    @strawberry.field
    def late(self) -> list[Row]:
        return [*_rows(), LateRow(name="c", count=3, shade=Shade.RED, note=None, day=date.min)]


class Shout(SchemaExtension):
    """Resolve middleware: it must see every field, so no list may bypass it."""

    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, **kwargs: Any) -> Any:
        value = _next(root, info, **kwargs)
        return value.upper() if isinstance(value, str) else value


def _schemas(
    extensions: Sequence[type[SchemaExtension]] = (),
) -> tuple[strawberry.Schema, strawberry.Schema]:
    fast = strawberry.Schema(
        query=Query, extensions=extensions, execution_context_class=PlainRowsExecutor
    )
    plain = strawberry.Schema(
        query=Query,
        extensions=extensions,
        execution_context_class=StrawberryGraphQLCoreExecutionContext,
    )
    return fast, plain


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The number of rows of each list the fast path answered."""
    counts: list[int] = []
    original = execution.answer_rows

    def counting(plan: PlainRows, items: Sequence[Any]) -> list[dict[str, Any]] | None:
        rows = original(plan, items)
        if rows is not None:
            counts.append(len(rows))
        return rows

    monkeypatch.setattr(execution, "answer_rows", counting)
    yield counts


def _answer(result: Any) -> str:
    errors = [error.formatted for error in result.errors or ()]
    return json.dumps({"data": result.data, "errors": errors}, separators=(",", ":"))


async def _both(
    document: str,
    variables: dict[str, Any] | None = None,
    extensions: Sequence[type[SchemaExtension]] = (),
) -> tuple[str, str]:
    fast, plain = _schemas(extensions)
    fast_result = await fast.execute(document, variable_values=variables)
    plain_result = await plain.execute(document, variable_values=variables)
    return _answer(fast_result), _answer(plain_result)


ROWS = """
query Rows($hide: Boolean!, $show: Boolean!) {
  rows {
    label: name
    __typename
    count
    ...Colour
    ... on Row { howMany: count day }
    name @skip(if: $hide)
    again: name @include(if: $show)
  }
}
fragment Colour on Row { shade note }
"""


@pytest.mark.parametrize("hide", [True, False])
async def test_plain_rows_answer_as_graphql_core_does(hide: bool, answered: list[int]) -> None:
    fast, plain = await _both(ROWS, {"hide": hide, "show": not hide})
    assert fast == plain
    assert answered == [2]
    first = json.loads(fast)["data"]["rows"][0]
    expected = ["label", "__typename", "count", "shade", "note", "howMany", "day"]
    expected += [] if hide else ["name", "again"]
    assert list(first) == expected
    assert first["shade"] == "RED" and first["day"] == "2026-10-01"
    assert json.loads(fast)["data"]["rows"][1]["note"] is None


async def test_a_null_for_a_non_null_field_gives_graphql_cores_error(
    answered: list[int],
) -> None:
    fast, plain = await _both("{ unnamed { count name } }")
    assert fast == plain
    assert answered == []
    assert json.loads(fast)["errors"][0]["path"] == ["unnamed", 1, "name"]


@pytest.mark.parametrize(
    "document",
    [
        "{ rows { name loud } }",  # a field with a resolver
        "{ late { name count } }",  # an item of another class
    ],
)
async def test_lists_that_are_not_plain_take_the_normal_path(
    document: str, answered: list[int]
) -> None:
    fast, plain = await _both(document)
    assert fast == plain
    assert "errors" in json.loads(fast) and not json.loads(fast)["errors"]
    assert answered == []


DAYS = """
query Days($shade: String) {
  days { day rows(shade: $shade) { name shade } all: rows(atLeast: 2) { count } }
}
"""


@pytest.mark.parametrize("shade", [None, "blue"])
async def test_days_of_pure_lists_are_answered_as_plain_rows(
    shade: str | None, answered: list[int]
) -> None:
    fast, plain = await _both(DAYS, {"shade": shade})
    assert fast == plain
    days = json.loads(fast)["data"]["days"]
    assert [d["day"] for d in days] == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert [r["name"] for r in days[0]["rows"]] == (["b"] if shade else ["a", "b"])
    assert days[2]["all"] == [{"count": 2}]
    # The days list answered directly, its rows inside it (counted as they are answered).
    assert answered[-1] == 3


async def test_a_pure_list_that_raises_gives_graphql_cores_error(answered: list[int]) -> None:
    fast, plain = await _both("{ days { day broken { name } } }")
    assert fast == plain
    errors = json.loads(fast)["errors"]
    assert [e["path"] for e in errors] == [["days", 1, "broken"]]
    assert errors[0]["message"] == "no rows on the second"
    assert 3 not in answered  # the days took the normal path; the good days' rows did not


async def test_an_unmarked_resolver_keeps_its_days_on_the_normal_path(
    answered: list[int],
) -> None:
    fast, plain = await _both("{ days { day unmarked { name } } }")
    assert fast == plain
    assert answered == [2, 2, 2]  # each day's rows directly, the days themselves not


async def test_resolve_middleware_sees_every_field(answered: list[int]) -> None:
    fast, plain = await _both("{ rows { name note } }", extensions=[Shout])
    assert fast == plain
    assert json.loads(fast)["data"]["rows"][0] == {"name": "A", "note": "FIRST"}
    assert answered == []


FRONTEND_DOCUMENTS = Path(__file__).parents[3] / "frontend" / "src" / "graphql"
USAGE_DOCUMENTS = {
    "P1AccountMonth": P1_DOCUMENT,
    "P1AccountMonthEveryField": REST_FIELDS_DOCUMENT,
    **{
        name: (FRONTEND_DOCUMENTS / f"{name}.graphql").read_text(encoding="utf-8")
        for name in ("LlmDailyChart", "ComputeChart", "VoiceChart", "KeyCards")
    },
}


async def _post(client: httpx.AsyncClient, document: str, world: World) -> bytes:
    variables = {"filter": {"accountId": str(world.acme), "month": MONTH}}
    if "$accountId" in document:
        variables["accountId"] = str(world.acme)
    response = await client.post(
        "/graphql", json={"query": document, "variables": variables}, headers=bearer(**ALICE)
    )
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("name", USAGE_DOCUMENTS)
async def test_the_usage_page_answers_the_same_bytes(
    name: str,
    client: httpx.AsyncClient,
    world: World,
    answered: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = USAGE_DOCUMENTS[name]
    fast = await _post(client, document, world)
    assert "errors" not in json.loads(fast)
    assert answered, "no list was answered directly"
    monkeypatch.setattr(execution, "answer_rows", lambda _plan, _items: None)
    assert await _post(client, document, world) == fast
