"""Comments cite documents that are in the repository, and the sections they cite exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("backend", "tests", "benchmarks", "devsupport", "frontend/src", "justfile")
# The product specification outside the repository, cited by its section numbers: the
# contracts the repository needs are in CONTRACTS.md, which comments cite instead.
OUTSIDE = re.compile(r"\bDESIGN\s+(?:section\s+)?\d")
CITATION = re.compile(r"CONTRACTS\.md\s+§(\d+(?:\.\d+)?)")


def _tracked() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", *SOURCES], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in listed if not name.endswith((".png", ".ico", ".db"))]


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        return ""


def test_no_comment_cites_a_document_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in [*_tracked(), REPO / "README.md", REPO / "ARCHITECTURE.md"]
        for number, line in enumerate(_text(path).splitlines(), 1)
        if OUTSIDE.search(line) and path.name != "test_docs.py"
    ]
    assert not found, "\n".join(found)


def test_every_cited_contract_section_exists() -> None:
    headings = {
        match.group(1)
        for match in re.finditer(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", _text(REPO / "CONTRACTS.md"), re.M)
    }
    cited = {
        (match.group(1), str(path.relative_to(REPO)))
        for path in [*_tracked(), REPO / "README.md", REPO / "ARCHITECTURE.md"]
        for match in CITATION.finditer(_text(path))
    }
    assert cited, "the code cites CONTRACTS.md"
    missing = sorted(f"{where}: §{section}" for section, where in cited if section not in headings)
    assert not missing, missing
