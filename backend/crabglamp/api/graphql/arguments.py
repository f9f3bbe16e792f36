"""Arguments that several fields take, declared once: the same name, type and description
wherever they appear in the schema."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

AccountIdArg = Annotated[
    strawberry.ID | None, strawberry.argument(description="The account; default: the caller's.")
]
MonthArg = Annotated[str | None, strawberry.argument(description="A UTC month, YYYY-MM.")]
FromArg = Annotated[
    date | None, strawberry.argument(name="from", description="First day (inclusive).")
]
ToArg = Annotated[date | None, strawberry.argument(name="to", description="Last day (inclusive).")]
# Narrowing a period's daily list: a window inside the period the parent was asked for.
DaysFromArg = Annotated[
    date | None,
    strawberry.argument(
        name="from", description="Only days on or after this date (within the period)."
    ),
]
DaysToArg = Annotated[
    date | None,
    strawberry.argument(
        name="to", description="Only days on or before this date (within the period)."
    ),
]
ProviderArg = Annotated[str | None, strawberry.argument(description="Only keys for this provider.")]
AgentArg = Annotated[strawberry.ID | None, strawberry.argument(description="Only this agent.")]
