"""Named benchmarks that `python -m benchmarks.run` finds and runs.

A module in this package registers its benchmarks with `@benchmark(...)`; run.py imports every
module of the package, so adding a file is all it takes to plug a new one in (`--list` shows
them, `--only NAME` picks some).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.dataset import Dataset


@dataclass(slots=True)
class Result:
    """One measured figure, with its CONTRACTS.md §7.1 target when it has one."""

    target_id: str  # "P1", "P2", ... or "-" for a figure without a target
    what: str
    engine: str
    measured: float
    unit: str  # "ms", "events/s", "x", ...
    goal: float | None = None
    lower_is_better: bool = True
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.goal is None:
            return None
        return self.measured <= self.goal if self.lower_is_better else self.measured >= self.goal

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return ""
        if self.passed:
            return "PASS"
        # How far off, in the direction of the target.
        factor = self.measured / self.goal if self.lower_is_better else self.goal / self.measured
        return f"MISS ({factor:.1f}x off)" if self.goal else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target_id,
            "what": self.what,
            "engine": self.engine,
            "measured": self.measured,
            "unit": self.unit,
            "goal": self.goal,
            "lowerIsBetter": self.lower_is_better,
            "verdict": self.verdict or None,
            "detail": self.detail,
        }


@dataclass(slots=True)
class Context:
    """What a benchmark gets: the engine under test and its dataset (when it asked for one)."""

    engine_name: str  # "sqlite" | "postgres"
    engine: AsyncEngine | None
    dataset: Dataset | None
    options: argparse.Namespace
    postgres_admin_url: str

    def need(self) -> tuple[AsyncEngine, Dataset]:
        if self.engine is None or self.dataset is None:
            raise RuntimeError("this benchmark needs a dataset (register it with needs_dataset)")
        return self.engine, self.dataset


Runner = Callable[[Context], Awaitable[list[Result]]]


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    target_id: str
    description: str
    run: Runner
    needs_dataset: bool = True
    # Part of a plain `just bench`; others only run when named with --only.
    default: bool = True
    # Run once per engine (the usual), or once in all (engine "-": e.g. a pure proxy benchmark).
    per_engine: bool = True
    order: int = 100


REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str,
    *,
    target: str,
    description: str,
    needs_dataset: bool = True,
    default: bool = True,
    per_engine: bool = True,
    order: int = 100,
) -> Callable[[Runner], Runner]:
    def register(run: Runner) -> Runner:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(
            name, target, description, run, needs_dataset, default, per_engine, order
        )
        return run

    return register


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of at least one sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
