"""`crabglamp import` and `crabglamp export` as a person runs them: the real command, its exit
codes, its messages, and what it leaves in the database named by DATABASE_URL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel

from crabglamp.cli import main
from crabglamp.db import make_engine

CRABGLAMP = Path(sys.executable).with_name("crabglamp")
ACME = uuid.UUID("00000000-0000-4000-8000-00000000ac3e")
KEY = uuid.UUID("00000000-0000-4000-8000-00000000c001")


def bundle() -> list[dict[str, Any]]:
    return [
        {"type": "account", "id": str(ACME), "name": "Acme", "clerkOrgId": "org_acme"},
        {
            "type": "key",
            "id": str(KEY),
            "accountId": str(ACME),
            "name": "prod",
            "provider": "openai",
            "spendCapCents": 50000,
        },
        *(
            {
                "type": "llm",
                "id": f"evt-{day}",
                "ts": f"2026-11-{day:02d}T12:00:00Z",
                "keyId": str(KEY),
                "provider": "openai",
                "model": "gpt-4o-mini",
                "inputTokens": 1200,
                "outputTokens": 300,
                "costCents": 0.0315,
            }
            for day in range(1, 6)
        ),
        {
            "type": "voice",
            "id": "voice-1",
            "ts": "2026-11-03T10:00:00+01:00",
            "accountId": str(ACME),
            "voiceModel": "tts-1",
            "characters": 1800,
        },
    ]


def write(path: Path, objs: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


def crabglamp(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CRABGLAMP), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": db_url},
        timeout=300,
        check=False,
    )


def row_counts(db_url: str) -> dict[str, int]:
    async def count() -> dict[str, int]:
        engine = make_engine(db_url)
        try:
            async with engine.connect() as conn:
                return {
                    name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                    for name, t in SQLModel.metadata.tables.items()
                }
        finally:
            await engine.dispose()

    return asyncio.run(count())


def test_import_then_export_round_trip(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "acme.jsonl", bundle())
    done = crabglamp(db_url, "import", str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"{source}: imported 8 lines: accounts 1 new; keys 1 new; events 6 new, 0 already stored"
    )
    counts = row_counts(db_url)
    assert (counts["llm_event"], counts["voice_event"], counts["llm_daily"]) == (5, 1, 5)

    out = tmp_path / "export.jsonl"
    done = crabglamp(db_url, "export", "--account", str(ACME), "--month", "2026-11", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "1 keys; events 5 llm, 1 voice, 0 compute to" in done.stderr
    exported = out.read_text().splitlines()
    assert [json.loads(line)["type"] for line in exported] == ["account", "key"] + ["llm"] * 5 + [
        "voice"
    ]
    # The voice line had no cost: it was priced from the catalog (tts-1: $15 per million).
    assert json.loads(exported[-1])["costCents"] == 2.7
    assert not list(tmp_path.glob(".export.jsonl.*")), "the temporary file is gone"

    # The exported bundle is the data again: importing it changes nothing.
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["import", str(out)]) == 0
    assert "events 0 new, 6 already stored" in capsys.readouterr().out
    assert row_counts(db_url) == counts


def test_a_bad_bundle_is_reported_by_line_and_nothing_is_written(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = bundle()
    bad = [*good[:2], "", {**good[2], "inputTokens": -5}, *good[3:], '{"type": "llm"']
    source = write(tmp_path / "bad.jsonl", bad)
    before = row_counts(db_url)

    done = crabglamp(db_url, "import", str(source))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{source}:4: inputTokens: must not be negative, got -5",
        f"{source}:10: not valid JSON: Expecting ',' delimiter (column 15)",
        f"{source}: nothing written: 2 of 9 lines refused (fix them, or use --skip-invalid to "
        "write the other 7)",
    ]
    assert row_counts(db_url) == before

    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["import", "--skip-invalid", str(source)]) == 1
    printed = capsys.readouterr()
    assert printed.out.strip().endswith("events 5 new, 0 already stored; 2 lines refused")
    assert len(printed.err.splitlines()) == 2
    assert row_counts(db_url)["llm_event"] == 4


def test_usage_errors_exit_2(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["import", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["export", "--account", "acme", "--month", "2026-11"]) == 2
    assert "--account must be a UUID" in capsys.readouterr().err
    assert main(["export", "--account", str(ACME), "--month", "2026-13"]) == 2
    assert "month must be YYYY-MM" in capsys.readouterr().err
    out = tmp_path / "exports" / "x.jsonl"
    out.parent.mkdir()
    assert main(["export", "--account", str(ACME), "--month", "2026-11", "-o", str(out)]) == 2
    assert f"no account {ACME}" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == [], "no file, not even a temporary one"


def test_export_to_standard_output(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["import", str(write(tmp_path / "b.jsonl", bundle()))]) == 0
    capsys.readouterr()
    assert main(["export", "--account", str(ACME), "--month", "2026-10"]) == 0
    printed = capsys.readouterr()
    assert [json.loads(line)["type"] for line in printed.out.splitlines()] == ["account", "key"]
    assert "events 0 llm, 0 voice, 0 compute to standard output" in printed.err
