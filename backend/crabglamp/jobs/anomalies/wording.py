"""How anomalies (and the alerts about them) put money, days and ratios into words."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date

from crabglamp.money import MICROS_PER_CENT


def dollars(micros: float) -> str:
    dollars_ = micros / MICROS_PER_CENT / 100
    if 0 < abs(dollars_) < 0.01:
        return "less than $0.01"
    return f"${dollars_:,.2f}"


def day_phrase(day: date) -> str:
    return f"{day:%b} {day.day}"


def times(ratio: float) -> str:
    return f"{ratio:,.0f} times" if ratio >= 10 else f"{ratio:,.1f} times"


def agent_phrase(agent_id: uuid.UUID | None, agent_names: Mapping[uuid.UUID, str]) -> str:
    if agent_id is None:
        return "requests without an agent"
    return f"agent '{agent_names.get(agent_id, str(agent_id))}'"
