"""`crabglamp demo`: realistic, deterministic demo data with the three anomalies of CONTRACTS.md §3.2 planted.

Every event is a pure function of (seed, scale, the demo's first day, the thing that spends, its
time slot) and carries a stable id, so a re-run goes through the Ingestor's idempotency: what
exists is skipped, what happened since the last run is topped up, nothing is doubled. Only the
planted anomalies are placed relative to now (their ids name their own minute or day).

`specs.py` says what the demo holds, `generator.py` draws its ordinary traffic, `planted.py` the
anomalies, `caps.py` the keys' caps, and `seeding.py` records it all; `progress.py` shows how far
it got. This package's face is what a seeded demo gives the rest of the house: its accounts, its
people (the dev sign-in lists `DEMO_USERS`), its planted keys, and the way to seed it.
"""

from __future__ import annotations

from crabglamp.dev.demo.planted import PLANTED
from crabglamp.dev.demo.seeding import DemoError, DemoSummary, seed_demo, seed_engine
from crabglamp.dev.demo.specs import (
    ACME_ACCOUNT_ID,
    BOB_ACCOUNT_ID,
    DEMO_ACCOUNT_IDS,
    DEMO_USERS,
    GLOBEX_ACCOUNT_ID,
    DemoUser,
)

__all__ = [
    "ACME_ACCOUNT_ID",
    "BOB_ACCOUNT_ID",
    "DEMO_ACCOUNT_IDS",
    "DEMO_USERS",
    "GLOBEX_ACCOUNT_ID",
    "PLANTED",
    "DemoError",
    "DemoSummary",
    "DemoUser",
    "seed_demo",
    "seed_engine",
]
