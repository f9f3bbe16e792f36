"""The dashboard's GraphQL documents against the API's schema, and its pinned build."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
DOCUMENTS = sorted((FRONTEND / "src").rglob("*.graphql"))
# Sources that consume the documents' answers (the generated types excepted).
SOURCES = [
    p for p in (FRONTEND / "src").rglob("*.ts") if "generated" not in p.relative_to(FRONTEND).parts
]


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))


def _parse(path: Path) -> DocumentNode:
    return parse(path.read_text(encoding="utf-8"))


def test_the_dashboard_has_its_documents() -> None:
    names = {p.stem for p in DOCUMENTS}
    assert {"KeyCards", "LlmDailyChart", "RequestLog", "ComputeChart", "VoiceChart"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_each_document_validates_against_the_schema(path: Path, schema: GraphQLSchema) -> None:
    errors = validate(schema, _parse(path))
    assert not errors, "\n".join(f"{path.name}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_each_file_holds_one_operation_named_after_it(path: Path) -> None:
    operations = [d for d in _parse(path).definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1
    assert operations[0].name is not None
    assert operations[0].name.value == path.stem


def _leaf_fields(document: DocumentNode) -> set[str]:
    leaves: set[str] = set()

    def walk(node: FieldNode) -> None:
        if node.selection_set is None:
            leaves.add(node.alias.value if node.alias else node.name.value)
            return
        for child in node.selection_set.selections:
            if isinstance(child, FieldNode):
                walk(child)

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode):
                    walk(selection)
    return leaves


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_each_document_asks_only_for_fields_the_page_uses(path: Path) -> None:
    # Every value a document fetches is read somewhere in the app's code: a field that nothing
    # draws is bytes on the wire for nothing.
    code = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)
    unused = sorted(f for f in _leaf_fields(_parse(path)) if not re.search(rf"\b{f}\b", code))
    assert not unused, f"{path.name} asks for fields the dashboard never reads: {unused}"


def test_dependencies_are_pinned_and_locked() -> None:
    package = json.loads((FRONTEND / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((FRONTEND / "package-lock.json").read_text(encoding="utf-8"))
    wanted = {**package["dependencies"], **package["devDependencies"]}
    assert {"chart.js", "vite", "@graphql-codegen/cli", "typescript"} <= set(wanted)
    for name, version in wanted.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    root = lock["packages"][""]
    assert root["dependencies"] == package["dependencies"]
    assert root["devDependencies"] == package["devDependencies"]


def test_codegen_types_the_documents_from_the_schema_at_the_root() -> None:
    config = (FRONTEND / "codegen.ts").read_text(encoding="utf-8")
    assert '"../schema.graphql"' in config
    assert '"src/graphql/**/*.graphql"' in config
    assert "typed-document-node" in config
