"""Tables of CrabGlamp Usage (DESIGN section 3). Money is integer micro-cents throughout."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

# Rollup keys cannot hold NULL (NULLs never conflict in a unique index), so "no agent" and
# "no plain VM" are this id inside rollup tables only; the usage service maps it back to None.
NONE_ID = uuid.UUID(int=0)


def _micros(**kwargs: Any) -> Any:
    return Field(default=0, sa_type=BigInteger, **kwargs)


def _moment(**kwargs: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), **kwargs)


# Accounts and people


class Account(SQLModel, table=True):
    __tablename__ = "account"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    clerk_org_id: str | None = Field(default=None, unique=True)
    owner_user_id: str | None = Field(default=None, index=True)


class Member(SQLModel, table=True):
    __tablename__ = "member"
    account_id: uuid.UUID = Field(primary_key=True, foreign_key="account.id")
    user_id: str = Field(primary_key=True, index=True)
    role: str = "member"  # "admin" | "member"


# What runs and spends


class Agent(SQLModel, table=True):
    __tablename__ = "agent"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    name: str


class PlainVm(SQLModel, table=True):
    __tablename__ = "plain_vm"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    name: str
    cents_per_hour_micros: int = _micros()


class VirtualKey(SQLModel, table=True):
    __tablename__ = "virtual_key"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    name: str
    provider: str | None = None
    agent_id: uuid.UUID | None = Field(default=None, foreign_key="agent.id")
    # Monthly cap; None means uncapped.
    spend_cap_micros: int | None = Field(default=None, sa_type=BigInteger)
    status: str = "active"  # "active" | "revoked"
    # The secret itself is never stored: a hash to look it up, a prefix to show.
    secret_hash: str | None = Field(default=None, unique=True)
    secret_prefix: str | None = None
    created_at: datetime | None = _moment(default=None)


# Prices


class Price(SQLModel, table=True):
    __tablename__ = "price"
    __table_args__ = (UniqueConstraint("provider", "model", "valid_from"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    model: str = Field(index=True)
    kind: str = "llm"  # "llm" | "embedding" | "voice"
    # Micro-cents per million units keeps every list price an integer.
    input_micros_per_mtok: int = _micros()
    output_micros_per_mtok: int = _micros()
    micros_per_mchar: int = _micros()
    valid_from: date = Field(sa_type=Date)


# Events: one row per billable thing, written once


class LlmEvent(SQLModel, table=True):
    __tablename__ = "llm_event"
    __table_args__ = (
        # The drill-down: one key's (or one account's) requests of a model on a day, in order.
        Index("ix_llm_event_key_model_ts", "key_id", "model", "ts", "id"),
        Index("ix_llm_event_account_model_ts", "account_id", "model", "ts", "id"),
    )
    id: str = Field(primary_key=True)
    ts: datetime = _moment()
    account_id: uuid.UUID
    key_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    provider: str
    model: str
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    cost_micros: int = _micros()
    status: str = "ok"  # "ok" | "error"


class VoiceEvent(SQLModel, table=True):
    __tablename__ = "voice_event"
    __table_args__ = (Index("ix_voice_event_account_ts", "account_id", "ts"),)
    id: str = Field(primary_key=True)
    ts: datetime = _moment()
    account_id: uuid.UUID
    key_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    voice_model: str
    characters: int = Field(default=0, sa_type=BigInteger)
    cost_micros: int = _micros()
    status: str = "ok"


class ComputeInterval(SQLModel, table=True):
    __tablename__ = "compute_interval"
    __table_args__ = (Index("ix_compute_interval_account_start", "account_id", "start"),)
    id: str = Field(primary_key=True)
    account_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    plain_vm_id: uuid.UUID | None = None
    state: str = "running"  # "running" | "paused"
    start: datetime = _moment()
    # None while the interval is open; it accrues until now and is rolled up once closed.
    end: datetime | None = _moment(default=None, index=True)
    cents_per_hour_micros: int = _micros()


# Daily rollups, maintained in the same transaction as the events they sum


class LlmDaily(SQLModel, table=True):
    __tablename__ = "llm_daily"
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    key_id: uuid.UUID = Field(primary_key=True)
    agent_id: uuid.UUID = Field(primary_key=True)
    provider: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    cost_micros: int = _micros()
    request_count: int = Field(default=0, sa_type=BigInteger)
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)


class VoiceDaily(SQLModel, table=True):
    __tablename__ = "voice_daily"
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    agent_id: uuid.UUID = Field(primary_key=True)
    voice_model: str = Field(primary_key=True)
    cost_micros: int = _micros()
    characters: int = Field(default=0, sa_type=BigInteger)
    request_count: int = Field(default=0, sa_type=Integer)


class ComputeDaily(SQLModel, table=True):
    __tablename__ = "compute_daily"
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    agent_id: uuid.UUID = Field(primary_key=True)
    plain_vm_id: uuid.UUID = Field(primary_key=True)
    state: str = Field(primary_key=True)
    cost_micros: int = _micros()
    duration_us: int = Field(default=0, sa_type=BigInteger)


class LlmHourly(SQLModel, table=True):
    """Per key and UTC hour: what anomaly detection compares against a key's own baseline."""

    __tablename__ = "llm_hourly"
    account_id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(primary_key=True)
    hour: datetime = Field(primary_key=True, sa_type=DateTime(timezone=True))
    cost_micros: int = _micros()
    request_count: int = Field(default=0, sa_type=BigInteger)
