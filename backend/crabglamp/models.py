"""Tables of CrabGlamp Usage (CONTRACTS.md §8). Money is integer micro-cents throughout."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, UniqueConstraint, text
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


class AccountAudit(SQLModel, table=True):
    """A change of an account's Clerk organisation: whoever binds an account to an organisation
    lets every member of that organisation in, so each change is kept with who made it."""

    __tablename__ = "account_audit"
    __table_args__ = (Index("ix_account_audit_account_at", "account_id", "at"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID
    at: datetime = _moment()
    # A user id (`user_…`), or "operator" for `crabglamp import`.
    actor: str
    field: str = "clerk_org_id"
    old_value: str | None = None
    new_value: str | None = None


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
    # "active" | "suspended" (refused until an admin resumes it) | "revoked" (for good)
    status: str = "active"
    # The secret itself is never stored: a hash to look it up, a prefix to show.
    secret_hash: str | None = Field(default=None, unique=True)
    secret_prefix: str | None = None
    created_at: datetime | None = _moment(default=None)
    # What happens on a spike on this (quiet) key: "notify" (alert only), "suspend" the key, or
    # "lower_cap" to what it has spent this month; applied by the watcher as it detects.
    leak_policy: str = "notify"
    # Why and since when a suspended key is refused (the proxy's 403 says so).
    suspended_at: datetime | None = _moment(default=None)
    suspended_reason: str | None = None
    # The anomaly whose leak policy suspended the key, if that is how it was suspended.
    suspended_by_anomaly: str | None = None


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
    # Cache rates of an override; None prices those tokens at the input rate.
    cache_read_micros_per_mtok: int | None = Field(default=None, sa_type=BigInteger)
    cache_write_5m_micros_per_mtok: int | None = Field(default=None, sa_type=BigInteger)
    cache_write_1h_micros_per_mtok: int | None = Field(default=None, sa_type=BigInteger)


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
    # Parts of the totals above (docs/how-requests-are-priced.md): cache reads and writes and
    # audio of the input, reasoning and audio of the output; what caching saved at the
    # catalog's prices.
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_5m_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_1h_tokens: int = Field(default=0, sa_type=BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_saved_micros: int = _micros()
    service_tier: str | None = None
    # Counted by the proxy from what passed through, the provider having reported no usage.
    estimated: bool = False


class VoiceEvent(SQLModel, table=True):
    __tablename__ = "voice_event"
    __table_args__ = (
        Index("ix_voice_event_account_ts", "account_id", "ts"),
        # Speech made with a key counts against its cap: its month is summed per key.
        Index("ix_voice_event_key_ts", "key_id", "ts"),
    )
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
    __table_args__ = (
        Index("ix_compute_interval_account_start", "account_id", "start"),
        # Only the open intervals, about one per agent and VM: usage() accrues them and billing
        # looks for them by account, which the index above answers by walking all of its history.
        Index(
            "ix_compute_interval_open",
            "account_id",
            "start",
            sqlite_where=text('"end" IS NULL'),
            postgresql_where=text('"end" IS NULL'),
        ),
    )
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

# The rollups usage() sums are clustered by their primary key on SQLite (WITHOUT ROWID): a
# month's range is then one walk of one B-tree instead of an index walk plus a table lookup per
# row, about half the time for voice and the per-key list (BENCHMARKS.md, P1). llm_daily and
# llm_hourly keep their rowid: usage() reads them only under filters, and clustered their
# upserts were no faster (llm_daily's 7 % slower).
READ_CLUSTERED: Final = {"sqlite_with_rowid": False}


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
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_5m_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_1h_tokens: int = Field(default=0, sa_type=BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_saved_micros: int = _micros()


class VoiceDaily(SQLModel, table=True):
    __tablename__ = "voice_daily"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    agent_id: uuid.UUID = Field(primary_key=True)
    voice_model: str = Field(primary_key=True)
    cost_micros: int = _micros()
    characters: int = Field(default=0, sa_type=BigInteger)
    request_count: int = Field(default=0, sa_type=Integer)


class ComputeDaily(SQLModel, table=True):
    __tablename__ = "compute_daily"
    __table_args__ = dict(READ_CLUSTERED)
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


# Coarse LLM rollups: each of the usage response's breakdowns read from a few rows, not llm_daily's


class LlmDailyModel(SQLModel, table=True):
    """llm_daily summed over keys and agents: daily x model, the per-model list, the total."""

    __tablename__ = "llm_daily_model"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    provider: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    cost_micros: int = _micros()
    request_count: int = Field(default=0, sa_type=BigInteger)
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_5m_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_1h_tokens: int = Field(default=0, sa_type=BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_saved_micros: int = _micros()


class LlmDailyAgent(SQLModel, table=True):
    """llm_daily summed over keys, providers and models: the per-agent list (NONE_ID: none)."""

    __tablename__ = "llm_daily_agent"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    agent_id: uuid.UUID = Field(primary_key=True)
    cost_micros: int = _micros()
    request_count: int = Field(default=0, sa_type=BigInteger)


class LlmDailyKey(SQLModel, table=True):
    """llm_daily summed over agents and models: the per-key list (by provider, for its filter)."""

    __tablename__ = "llm_daily_key"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    key_id: uuid.UUID = Field(primary_key=True)
    provider: str = Field(primary_key=True)
    cost_micros: int = _micros()
    request_count: int = Field(default=0, sa_type=BigInteger)


# Rollups by the grain the usage response draws: lists that span the period are read per month
# (a handful of rows per key or agent instead of one per day), the voice chart per day and model.
# `month` is the first day of its UTC month.


class LlmMonthlyAgent(SQLModel, table=True):
    """llm_daily_agent summed over each month: the per-agent list of whole months."""

    __tablename__ = "llm_monthly_agent"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    month: date = Field(primary_key=True, sa_type=Date)
    agent_id: uuid.UUID = Field(primary_key=True)
    cost_micros: int = _micros()
    request_count: int = Field(default=0, sa_type=BigInteger)


class LlmMonthlyKey(SQLModel, table=True):
    """llm_daily_key summed over each month: the per-key list of whole months."""

    __tablename__ = "llm_monthly_key"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    month: date = Field(primary_key=True, sa_type=Date)
    key_id: uuid.UUID = Field(primary_key=True)
    provider: str = Field(primary_key=True)
    cost_micros: int = _micros()
    request_count: int = Field(default=0, sa_type=BigInteger)


class VoiceDailyModel(SQLModel, table=True):
    """voice_daily summed over agents: the voice chart (day x model) and the per-model list."""

    __tablename__ = "voice_daily_model"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)
    voice_model: str = Field(primary_key=True)
    cost_micros: int = _micros()
    characters: int = Field(default=0, sa_type=BigInteger)
    request_count: int = Field(default=0, sa_type=BigInteger)


class VoiceMonthlyAgent(SQLModel, table=True):
    """voice_daily summed over models and each month: the per-agent list of whole months."""

    __tablename__ = "voice_monthly_agent"
    __table_args__ = dict(READ_CLUSTERED)
    account_id: uuid.UUID = Field(primary_key=True)
    month: date = Field(primary_key=True, sa_type=Date)
    agent_id: uuid.UUID = Field(primary_key=True)
    cost_micros: int = _micros()
    characters: int = Field(default=0, sa_type=BigInteger)
    request_count: int = Field(default=0, sa_type=BigInteger)


# Proxy: retired secrets (rotation history and grace periods), monthly spend per key, reservations


class VirtualKeySecret(SQLModel, table=True):
    """A secret a key used to have; it still authenticates until `expires_at` (the grace period)."""

    __tablename__ = "virtual_key_secret"
    secret_hash: str = Field(primary_key=True)
    key_id: uuid.UUID = Field(foreign_key="virtual_key.id", index=True)
    secret_prefix: str
    retired_at: datetime = _moment()
    expires_at: datetime = _moment()


class KeySpend(SQLModel, table=True):
    """Per key and UTC calendar month: what the spend cap is checked against, in one row."""

    __tablename__ = "key_spend"
    key_id: uuid.UUID = Field(primary_key=True)
    month: date = Field(primary_key=True, sa_type=Date)
    spent_micros: int = _micros()
    # The maximum cost of requests admitted but not yet settled.
    reserved_micros: int = _micros()


class SpendReservation(SQLModel, table=True):
    __tablename__ = "spend_reservation"
    id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID
    month: date = Field(sa_type=Date)
    amount_micros: int = _micros()
    created_at: datetime = _moment()
    # After this the request is over for sure; the sweeper frees what is still held.
    expires_at: datetime = _moment(index=True)
    # The lease of the process that admitted it (None: admitted before leases existed): when
    # that process is gone, the sweeper frees the reservation without waiting for `expires_at`.
    lease_id: uuid.UUID | None = Field(default=None, index=True)


class ProxyLease(SQLModel, table=True):
    """A process that holds spend reservations, alive while it renews `expires_at` (its
    heartbeat). `host` and `process` (pid and start time) let a process on the same host tell at
    once that another one is gone, without waiting for its lease to lapse."""

    __tablename__ = "proxy_lease"
    id: uuid.UUID = Field(primary_key=True)
    host: str
    process: str
    created_at: datetime = _moment()
    expires_at: datetime = _moment(index=True)


# Anomalies, alerts and billing reports (anomalies.py, alerts.py, billing.py)


class AnomalyRecord(SQLModel, table=True):
    """An anomaly as detected while usage arrived; one per key, kind and month (`dedupe_key`)."""

    __tablename__ = "anomaly"
    __table_args__ = (
        Index("ix_anomaly_account_day", "account_id", "day"),
        Index("ix_anomaly_key_state", "key_id", "state"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    dedupe_key: str = Field(unique=True)
    kind: str
    account_id: uuid.UUID
    key_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    day: date = Field(sa_type=Date)
    severity: float
    message: str
    suggested_action: str
    # The numbers behind the message, as JSON (sent along in the webhook payload).
    details: str = "{}"
    detected_at: datetime = _moment()
    # Its state: "open", "acknowledged" (someone has seen it) or "resolved" (by `resolution`:
    # "rotated", "cap_changed", "suspended" or "dismissed" with `resolution_reason`).
    state: str = "open"
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = _moment(default=None)
    resolution: str | None = None
    resolution_reason: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = _moment(default=None)
    # What the key's leak policy did on detection: "suspended" or "cap_lowered" (None: notified
    # only), the cap it had before (to restore), and when an admin reverted it.
    policy_action: str | None = None
    policy_applied_at: datetime | None = _moment(default=None)
    policy_previous_cap_micros: int | None = Field(default=None, sa_type=BigInteger)
    policy_reverted_at: datetime | None = _moment(default=None)
    policy_reverted_by: str | None = None


class AlertEndpoint(SQLModel, table=True):
    """A customer's webhook: every alert of its account is POSTed there, HMAC-signed."""

    __tablename__ = "alert_endpoint"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(index=True)
    url: str
    description: str = ""
    # The signing secret must be readable to sign with (as Stripe's is); shown once to people.
    secret: str
    enabled: bool = True
    created_at: datetime = _moment()


class AlertDelivery(SQLModel, table=True):
    """One alert for one endpoint; `event_id` is its idempotency key (the same on every retry)."""

    __tablename__ = "alert_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_alert_delivery_due", "status", "next_attempt_at"),
        Index("ix_alert_delivery_account_created", "account_id", "created_at"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    endpoint_id: uuid.UUID = Field(index=True)
    account_id: uuid.UUID
    event_id: str
    event_type: str
    payload: str  # the JSON body, fixed at creation: every attempt sends the same bytes
    status: str = "pending"  # "pending" | "delivered" | "failed"
    attempts: int = 0
    next_attempt_at: datetime = _moment()
    # A sender claims a delivery until then, so two processes never send it at once.
    lease_until: datetime | None = _moment(default=None)
    lease_token: uuid.UUID | None = None
    created_at: datetime = _moment()
    delivered_at: datetime | None = _moment(default=None)
    last_status_code: int | None = None
    last_error: str | None = None


class AlertAttempt(SQLModel, table=True):
    __tablename__ = "alert_attempt"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: uuid.UUID = Field(index=True)
    attempt: int
    attempted_at: datetime = _moment()
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0


class CapCrossing(SQLModel, table=True):
    """A key crossed a share of its cap in a month; each (cap, threshold) is alerted once."""

    __tablename__ = "cap_crossing"
    key_id: uuid.UUID = Field(primary_key=True)
    month: date = Field(primary_key=True, sa_type=Date)
    cap_micros: int = Field(primary_key=True, sa_type=BigInteger)
    threshold_percent: int = Field(primary_key=True)
    account_id: uuid.UUID
    spent_micros: int = _micros()
    crossed_at: datetime = _moment()


class BillingLine(SQLModel, table=True):
    """What the billing sink was told of one account's line (compute, LLM, voice) in a month.

    An outbox of one: the next report is written here (`pending_*`) before it is sent, so a
    restart resends exactly the report that was not acknowledged, with the same id, and the
    sequence continues from what was persisted, never from memory. Report ids are
    "{account_id}:{line}:{YYYY-MM}:{seq}".
    """

    __tablename__ = "billing_line"
    account_id: uuid.UUID = Field(primary_key=True)
    line: str = Field(primary_key=True)  # "COMPUTE" | "LLM" | "VOICE"
    month: str = Field(primary_key=True)  # YYYY-MM
    # The last report the sink acknowledged (0: none yet).
    reported_seq: int = 0
    reported_total_micros: int = _micros()
    reported_as_of: datetime | None = _moment(default=None)
    reported_at: datetime | None = _moment(default=None)
    # The report being sent: it covers (reported_as_of, pending_as_of].
    pending_seq: int | None = None
    pending_total_micros: int | None = Field(default=None, sa_type=BigInteger)
    pending_as_of: datetime | None = _moment(default=None)
    pending_final: bool = False
    # The month's last report was acknowledged: nothing more is sent for it.
    closed: bool = Field(default=False, index=True)
    attempts: int = 0
    last_error: str | None = None
    lease_until: datetime | None = _moment(default=None)
    lease_token: uuid.UUID | None = None


# What changed, for the dashboards that listen (db/changes.py)


class UsageChangeMark(SQLModel, table=True):
    """The last change of one kind of an account's data, on SQLite: each server process polls
    the marks above the highest sequence it has seen. PostgreSQL sends NOTIFY instead and leaves
    this table empty. One row per account and kind, so it never grows with traffic."""

    __tablename__ = "usage_change_mark"
    account_id: uuid.UUID = Field(primary_key=True)
    kind: str = Field(primary_key=True)  # "llm" | "voice" | "compute" | "keys" | "anomalies"
    # A number all writers share: higher than every mark committed before (db/changes.py).
    seq: int = Field(sa_type=BigInteger, index=True)
