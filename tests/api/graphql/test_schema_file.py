"""schema.graphql equals the code's schema; the fixed fields of CONTRACTS.md §3.1 are there as written."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    build_schema,
    get_named_type,
)

from crabglamp.api.graphql.schema import schema, sdl
from crabglamp.cli import main

ROOT = Path(__file__).parents[3]

# CONTRACTS.md §3.1, verbatim (the Mutation is the key lifecycle's, registered separately).
FIXED = """
type Query {
  usage(filter: UsageFilter): Usage!
  virtualKeys(accountId: ID, provider: String): [VirtualKey!]!
  anomalies(accountId: ID, month: String, from: Date, to: Date): [Anomaly!]!
  invoice(accountId: ID, month: String): Invoice!
}
input UsageFilter { month: String, from: Date, to: Date, accountId: ID, agentId: ID,
                    keyId: ID, provider: String, model: String, voiceModel: String,
                    admin: Boolean }
type Anomaly { kind: AnomalyKind!, keyId: ID, agentId: ID, date: Date!, severity: Float!,
               message: String!, suggestedAction: String! }
enum AnomalyKind { SPIKE_ON_QUIET_KEY, CAP_TRAJECTORY, RUNAWAY_DAY }
type Invoice { month: String!, lines: [InvoiceLine!]!, totalCents: Int! }
type InvoiceLine { axis: UsageAxis!, continuousCents: Float!, amountCents: Int! }
enum UsageAxis { COMPUTE, LLM, VOICE }
type Usage { compute: String, llm: String, voice: String }
type VirtualKey { id: ID!, name: String!, provider: String, spendCapCents: Float,
                  accruedCents: Float!, percentUsed: Float }
scalar Date
"""


def test_schema_graphql_is_the_code_schema() -> None:
    assert (ROOT / "schema.graphql").read_text() == sdl(), "run `just schema`"


def test_schema_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    assert main(["schema", "--output", str(target)]) == 0
    assert target.read_text() == sdl()


def test_the_fixed_fields_of_the_design_are_there_as_written() -> None:
    ours = build_schema(sdl())
    design = build_schema(FIXED)
    for name, wanted in design.type_map.items():
        if name.startswith("__") or isinstance(wanted, GraphQLScalarType):
            continue
        have = ours.type_map[name]
        assert type(have) is type(wanted), name
        if isinstance(wanted, GraphQLEnumType):
            assert set(have.values) == set(wanted.values), name  # type: ignore[attr-defined]
            continue
        assert isinstance(wanted, GraphQLObjectType | GraphQLInputObjectType)
        for field_name, field in wanted.fields.items():
            mine = have.fields[field_name]  # type: ignore[attr-defined]
            if name == "Usage":
                continue  # its axes are object types of their own
            assert str(mine.type) == str(field.type), f"{name}.{field_name}"
            for arg_name, arg in getattr(field, "args", {}).items():
                assert str(mine.args[arg_name].type) == str(arg.type), f"{name}.{field_name}"


def _reachable(root: GraphQLNamedType) -> dict[str, GraphQLNamedType]:
    """Every type a query can reach from `root`: fields, their arguments and members."""
    found: dict[str, GraphQLNamedType] = {}
    todo = [root]
    while todo:
        current = todo.pop()
        if current.name in found or current.name.startswith("__"):
            continue
        found[current.name] = current
        for field in getattr(current, "fields", {}).values():
            todo.append(get_named_type(field.type))
            todo += [get_named_type(arg.type) for arg in getattr(field, "args", {}).values()]
        todo += getattr(current, "types", [])
    return found


def test_every_query_type_field_and_argument_has_a_description() -> None:
    missing = []
    types = _reachable(schema._schema.query_type)  # type: ignore[arg-type]
    for name, graphql_type in types.items():
        if name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []
