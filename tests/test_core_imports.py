"""The layout's rules, read from every module's imports (ARCHITECTURE.md states the same rules).

Data flows one way: foundation -> ingest | usage -> proxy | bundle -> jobs -> api -> app ->
server | cli, with dev/ on top. A module may import its own stage and the stages below it; the
core (everything below the API) imports no web framework.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import crabglamp

PACKAGE = Path(crabglamp.__file__).parent
# Stage -> rank. A stage may import stages of a lower rank, and itself; not a sibling of its own
# rank (so the read side, usage, never imports the write side, ingest).
RANKS = {
    "foundation": 0,
    "ingest": 1,
    "usage": 1,
    "proxy": 2,
    "bundle": 2,
    "jobs": 3,
    "api": 4,
    "app": 5,
    "server": 6,
    "cli": 6,
    "dev": 7,
}
STAGES = {"ingest", "usage", "proxy", "bundle", "jobs", "api", "app", "server", "cli", "dev"}
# The composition roots may register dev/'s commands and routes, lazily (inside a function).
LAZY_DEV_IMPORTERS = {"crabglamp.app", "crabglamp.cli"}
# The proxy's modules that hold no ASGI plumbing are core too.
WEB = {"crabglamp.proxy.routes"}
FRAMEWORKS = ("strawberry", "starlette", "uvicorn", "graphql")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (or package.name)
    lazy: bool  # inside a function (or under TYPE_CHECKING)
    line: int


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "versions" in path.parts:
            continue  # migrations' scripts import only sqlalchemy and alembic
        found[_name(path)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.Import):
                out.extend(Import(module, a.name, lazy, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    target = full if full in MODULES else child.module
                    out.append(Import(module, target, lazy, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return out


IMPORTS = [i for m, p in MODULES.items() for i in _imports(m, p)]
OURS = [i for i in IMPORTS if i.target == "crabglamp" or i.target.startswith("crabglamp.")]


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "foundation"
    return parts[1] if parts[1] in STAGES else "foundation"


def _where(i: Import) -> str:
    return f"{i.module}:{i.line} imports {i.target}"


def test_every_module_belongs_to_a_stage() -> None:
    assert {stage(m) for m in MODULES} <= set(RANKS)
    assert {"crabglamp.ingest", "crabglamp.usage", "crabglamp.api.graphql", "crabglamp.dev"} <= set(
        MODULES
    )


def test_stages_import_only_downward() -> None:
    wrong = []
    for i in OURS:
        if i.lazy and i.module in LAZY_DEV_IMPORTERS and stage(i.target) == "dev":
            continue  # checked by the dev test below
        mine, theirs = stage(i.module), stage(i.target)
        if mine != theirs and RANKS[theirs] >= RANKS[mine]:
            wrong.append(_where(i))
    assert wrong == []


def test_the_api_never_imports_the_app() -> None:
    wrong = [
        _where(i)
        for i in OURS
        if stage(i.module) == "api" and i.target in {"crabglamp.app", "crabglamp.server"}
    ]
    assert wrong == []


def test_the_read_side_never_imports_the_write_side() -> None:
    wrong = [
        _where(i)
        for i in OURS
        if stage(i.module) == "usage" and stage(i.target) in {"ingest", "proxy", "bundle"}
    ]
    assert wrong == []


def test_only_the_composition_roots_reach_dev_and_only_lazily() -> None:
    wrong = [
        _where(i)
        for i in OURS
        if stage(i.target) == "dev"
        and stage(i.module) != "dev"
        and not (i.lazy and i.module in LAZY_DEV_IMPORTERS)
    ]
    assert wrong == []


def _is_core(module: str) -> bool:
    return RANKS[stage(module)] <= RANKS["jobs"] and module not in WEB


CORE = sorted(m for m in MODULES if _is_core(m) and not m.startswith("crabglamp.migrations"))


def test_the_core_names_no_web_framework() -> None:
    wrong = [
        _where(i) for i in IMPORTS if _is_core(i.module) and i.target.split(".")[0] in FRAMEWORKS
    ]
    assert wrong == []


def test_there_is_no_import_cycle() -> None:
    # Module-level imports only: a lazy import (in a function, or for type checking) is how
    # Strawberry's mutually referring types name each other.
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in OURS:
        if not i.lazy and i.target in MODULES and i.target != i.module:
            graph[i.module].add(i.target)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    # A package's __init__ is imported by its submodules' importers: not a cycle of ideas.
    cycles = [c for c in cycles if not any(MODULES[m].name == "__init__.py" for m in c)]
    assert cycles == []


PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_imports_no_web_framework(module: str) -> None:
    # A fresh interpreter: this test process has long imported everything.
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "crabglamp" in loaded
    assert loaded.isdisjoint(FRAMEWORKS), sorted(loaded & set(FRAMEWORKS))
