"""The GraphQL-over-HTTP audit suite (npm `graphql-http`) against a live server: no failure and
no warning (CONTRACTS.md §7.2)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from api_support import ALICE, live_server, token

AUDIT = Path(__file__).parents[2] / "tools" / "graphql-http-audit"


def _node_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "node and npm are needed for the GraphQL-over-HTTP audit (tools/graphql-http-audit)"
        )
    return node, npm


def test_graphql_over_http_audit_passes_without_warnings(tmp_path: Path) -> None:
    node, npm = _node_tools()
    if not (AUDIT / "node_modules" / "graphql-http").is_dir():
        # A fresh clone: install exactly what package-lock.json pins.
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=AUDIT, check=True, timeout=300)
    with live_server(tmp_path, seeded=False) as (base, _world):
        run = subprocess.run(
            [node, "audit.mjs", "--url", f"{base}/graphql", "--token", token(**ALICE), "--json"],
            cwd=AUDIT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    report = json.loads(run.stdout)
    assert report["problems"] == [], report["problems"]
    assert report["counts"]["warn"] == 0 and report["counts"]["error"] == 0
    assert report["counts"]["ok"] >= 50  # the whole suite ran
    assert run.returncode == 0, run.stderr
