"""The core (models and services) imports no web framework: REST, GraphQL and the CLI share it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = (
    "crabglamp.models",
    "crabglamp.ingest.ingestor",
    "crabglamp.usage.service",
    "crabglamp.access",
    "crabglamp.prices",
    "crabglamp.periods",
    "crabglamp.money",
    "crabglamp.bundle.apply",
    "crabglamp.usage.invoice",
    "crabglamp.usage.filter",
    "crabglamp.jobs.anomalies",
    "crabglamp.jobs.alerts",
    "crabglamp.jobs.billing",
    "crabglamp.jobs.watch",
    "crabglamp.keys",
    "crabglamp.proxy.caps",
    "crabglamp.key_secrets",
)
FRAMEWORKS = ("strawberry", "starlette", "uvicorn", "graphql")

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
