"""What an import did: counts per type, the refused lines, and the forms people and the REST
endpoint read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from crabglamp.bundle.lines import ENTITY_TYPES, Problem

PLURALS: Final = {
    "account": "accounts",
    "member": "members",
    "agent": "agents",
    "plainVm": "plain VMs",
    "key": "keys",
    "price": "prices",
}


@dataclass(slots=True)
class ImportReport:
    problems: list[Problem] = field(default_factory=list)
    committed: bool = False
    line_count: int = 0
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    inserted: int = 0  # events newly stored
    duplicates: int = 0  # events already stored, or repeated in the bundle
    closed_intervals: int = 0  # open compute intervals that got their end

    @property
    def refused_lines(self) -> int:
        return len({p.line for p in self.problems})

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.committed:
            return f"nothing written: {self.refused_lines} of {self.line_count} lines refused"
        parts = []
        for kind in (*ENTITY_TYPES[:1], "member", *ENTITY_TYPES[1:], "price"):
            counts = [
                f"{n:,} {label}"
                for n, label in (
                    (self.created[kind], "new"),
                    (self.updated[kind], "updated"),
                    (self.unchanged[kind], "unchanged"),
                )
                if n
            ]
            if counts:
                parts.append(f"{PLURALS[kind]} {', '.join(counts)}")
        events = f"events {self.inserted:,} new, {self.duplicates:,} already stored"
        if self.closed_intervals:
            events += f", {self.closed_intervals:,} intervals closed"
        parts.append(events)
        refused = f"; {self.refused_lines:,} lines refused" if self.problems else ""
        return f"imported {self.line_count:,} lines: {'; '.join(parts)}{refused}"

    def to_json(self) -> dict[str, Any]:
        return {
            "committed": self.committed,
            "lines": self.line_count,
            "refusedLines": self.refused_lines,
            "created": dict(self.created),
            "updated": dict(self.updated),
            "unchanged": dict(self.unchanged),
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "closedIntervals": self.closed_intervals,
            "problems": [
                {"line": p.line, "field": p.field, "reason": p.reason} for p in self.problems
            ],
        }
