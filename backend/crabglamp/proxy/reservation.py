"""What a spend cap decides about a request, and the month it is counted in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

# Stands in for "no cap" wherever a cap is compared: far above any real spend, within BIGINT.
UNCAPPED = 2**62


def month_of(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


@dataclass(frozen=True, slots=True)
class Reservation:
    id: uuid.UUID
    key_id: uuid.UUID
    month: date
    amount_micros: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """Settle `reservation` to the actual cost of its request (0 for a failed one)."""

    reservation: Reservation
    cost_micros: int


@dataclass(frozen=True, slots=True)
class CapExceeded:
    cap_micros: int
    spent_micros: int
    reserved_micros: int
    estimate_micros: int


@dataclass(frozen=True, slots=True)
class KeyRefused:
    code: str  # "key_revoked" | "invalid_api_key" | "key_suspended"
    message: str
    status: int = 401  # 403 for a suspended key: the secret is right, the key may not spend
    anomaly_id: str | None = None  # the anomaly whose leak policy suspended the key


@dataclass(frozen=True, slots=True)
class MonthSpend:
    spent_micros: int
    reserved_micros: int
