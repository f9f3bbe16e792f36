"""`UsageChange` and `UsageChangeKind`: what a subscriber is told."""

from __future__ import annotations

import strawberry

from crabglamp.db import changes as core

UsageChangeKind = strawberry.enum(
    core.ChangeKind,
    name="UsageChangeKind",
    description=(
        "Which of an account's data changed: LLM, VOICE and COMPUTE usage, its KEYS (created, "
        "rotated, revoked, a cap changed) or its ANOMALIES."
    ),
)


@strawberry.type(
    name="UsageChange",
    description=(
        "An account's data changed (committed): re-read the parts that show these kinds. Bursts "
        "arrive as one change naming every kind."
    ),
)
class UsageChangeType:
    account_id: strawberry.ID | None = strawberry.field(
        description=(
            "The account; null for a platform-wide subscription that lost track for a moment "
            "(any account may have changed: re-read everything)."
        )
    )
    kinds: list[UsageChangeKind] = strawberry.field(  # type: ignore[valid-type]
        description="What changed, each kind once."
    )
