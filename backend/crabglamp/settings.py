"""Settings read from the environment, once, in one place: `Settings.from_env`.

Each field names its variable: `metadata["env"]`, or for the numbers of a group (`Thresholds`,
`AlertSettings`, `BillingSettings`) the group's prefix plus the field's name in upper case. So
`env_names()` is derived from the fields themselves, and a test keeps README.md's table complete.
The app builds everything else (the proxy, the background jobs) from one `Settings`.
Plain dataclasses rather than pydantic-settings: the core stays free of a validation framework,
and the groups' prefixes and error messages are ours to keep stable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from crabglamp.money import MICROS_PER_CENT

DEFAULT_SQLITE_PATH = Path("crabglamp.db")


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


# Parsers of the variables whose meaning is not just their type's


def _truthy(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _not_falsy(raw: str) -> bool:
    # On unless clearly turned off: a typo must not silently stop detection and billing.
    return raw.strip().lower() not in {"0", "false", "no", "off"}


def _list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _stripped(raw: str) -> str | None:
    return raw.strip() or None


def _env(name: str, parse: Callable[[str], Any] | None = None) -> dict[str, Any]:
    return {"env": name, "parse": parse}


# Groups of numbers, each read from <PREFIX><FIELD>


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every number anomaly detection uses, each from CRABGLAMP_ANOMALY_<FIELD> (upper case),
    e.g. CRABGLAMP_ANOMALY_SPIKE_HOUR_FLOOR_CENTS=500. Documented in docs/anomalies-and-alerts.md."""

    ENV_PREFIX: ClassVar[str] = "CRABGLAMP_ANOMALY_"
    # A ratio or a floor of 0 is meaningful here (0: always); a negative one is a mistake.
    ALLOW_ZERO: ClassVar[bool] = True

    # History a key needs before it can be judged against itself, and how far back it looks.
    min_history_days: int = 7
    baseline_days: int = 28
    # A day below this counts as a zero day; a key with at least this share of zero days in its
    # baseline is idle ("mostly-zero days"): a big day there is RUNAWAY_DAY, not a spike.
    zero_day_cents: int = 1
    mostly_zero_share: float = 0.5
    # SPIKE_ON_QUIET_KEY: an hour (or a day) at least the floor, at least the baseline median
    # plus `spike_mad_factor` robust standard deviations (1.4826 x MAD, never below the spread
    # floor), and at least `spike_peak_ratio` times the busiest hour (day) of the baseline.
    spike_hour_floor_cents: int = 200
    spike_day_floor_cents: int = 500
    spike_hour_spread_floor_cents: int = 10
    spike_day_spread_floor_cents: int = 50
    spike_mad_factor: float = 8.0
    spike_peak_ratio: float = 5.0
    # RUNAWAY_DAY: a day of at least the floor and the request count, and at least
    # `runaway_peak_ratio` times the biggest day of the baseline.
    runaway_floor_cents: int = 1000
    runaway_peak_ratio: float = 10.0
    runaway_min_requests: int = 20
    # CAP_TRAJECTORY: the run rate is the spend of the last `cap_rate_days` (at least
    # `cap_min_history_hours` of the key's life); alarm when month-to-date spend plus that rate
    # until the month ends is at least `cap_projection_ratio` times the cap.
    cap_rate_days: int = 7
    cap_min_history_hours: int = 48
    cap_projection_ratio: float = 1.0

    def micros(self, cents: int) -> int:
        return cents * MICROS_PER_CENT


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Delivery of alert webhooks, each from CRABGLAMP_ALERT_<FIELD> (upper case)."""

    ENV_PREFIX: ClassVar[str] = "CRABGLAMP_ALERT_"
    ALLOW_ZERO: ClassVar[bool] = False

    max_attempts: int = 8
    # The n-th retry waits backoff_seconds * 2^(n-1), at most max_backoff_seconds: 10 s, 20 s,
    # 40 s ... about 21 minutes from the first attempt to the eighth.
    backoff_seconds: float = 10.0
    max_backoff_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    # A sender owns the deliveries it picked for this long (another process leaves them alone).
    lease_seconds: float = 120.0
    batch: int = 50

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt."""
        seconds = self.backoff_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


@dataclass(frozen=True, slots=True)
class BillingSettings:
    """Reports to billing: CRABGLAMP_BILLING_SINK_URL (no URL: no reporting),
    CRABGLAMP_BILLING_SINK_SECRET (HMAC key of the X-CrabGlamp-Signature header, optional) and
    CRABGLAMP_BILLING_<FIELD> for the numbers."""

    ENV_PREFIX: ClassVar[str] = "CRABGLAMP_BILLING_"
    ALLOW_ZERO: ClassVar[bool] = False

    sink_url: str | None = None
    sink_secret: str | None = None
    interval_seconds: float = 60.0
    # How long after a month ends its totals may still change (late events), before the final.
    close_after_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    lease_seconds: float = 120.0
    batch: int = 200


@dataclass(frozen=True, slots=True)
class WebhookTargets:
    """Which addresses alert webhooks may reach (checked in `jobs/targets.py`). Public addresses
    always; loopback in development (tests and the demo receive on 127.0.0.1) or when private
    targets are allowed; private, link-local and unique-local ones only when allowed
    (CRABGLAMP_WEBHOOK_ALLOW_PRIVATE, for on-premise installs). Metadata, multicast and
    unspecified addresses never."""

    allow_loopback: bool = True
    allow_private: bool = False


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """Live updates of the dashboard (the `usageChanged` subscription over WebSocket), each from
    CRABGLAMP_LIVE_<FIELD> (upper case)."""

    ENV_PREFIX: ClassVar[str] = "CRABGLAMP_LIVE_"
    ALLOW_ZERO: ClassVar[bool] = False

    # SQLite only: how often each server process reads the change marks while someone listens
    # (PostgreSQL pushes NOTIFY at once).
    poll_seconds: float = 0.2
    # Subscriptions (and other operations) one WebSocket may run at once, and one account may
    # have in one server process.
    max_per_connection: int = 5
    max_per_account: int = 50
    # A subscriber hears at most one message per this interval: a burst of writes is one
    # message carrying every kind that changed.
    min_interval_seconds: float = 0.25


_GROUPS: dict[str, type[Any]] = {
    "Thresholds": Thresholds,
    "AlertSettings": AlertSettings,
    "BillingSettings": BillingSettings,
    "LiveSettings": LiveSettings,
}


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = field(
        default=f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}",
        metadata=_env("DATABASE_URL", normalise_database_url),
    )
    # Production turns off GraphiQL, introspection and the demo's local tokens.
    production: bool = field(default=False, metadata=_env("CRABGLAMP_PRODUCTION", _truthy))
    clerk_jwt_key: str | None = field(default=None, metadata=_env("CLERK_JWT_KEY"))
    clerk_issuer: str | None = field(default=None, metadata=_env("CLERK_ISSUER"))
    clerk_authorized_parties: tuple[str, ...] = field(
        default_factory=tuple, metadata=_env("CLERK_AUTHORIZED_PARTIES", _list)
    )
    # Clerk's browser SDK keeps the 60-second `__session` token fresh; the dashboard loads it
    # only when a deployment names its publishable key (pk_live_… / pk_test_…).
    clerk_publishable_key: str | None = field(
        default=None, metadata=_env("CLERK_PUBLISHABLE_KEY", _stripped)
    )
    upstream_config: str | None = field(default=None, metadata=_env("CRABGLAMP_UPSTREAM_CONFIG"))
    # The background jobs of a served process (jobs/watch.py): on unless turned off.
    background: bool = field(default=True, metadata=_env("CRABGLAMP_BACKGROUND", _not_falsy))
    watch_interval_seconds: float = field(
        default=5.0, metadata=_env("CRABGLAMP_WATCH_INTERVAL_SECONDS")
    )
    # The bearer token Prometheus sends to scrape `/metrics`. Production refuses every scrape
    # without it (unset: /metrics is closed); development leaves /metrics open unless it is set.
    metrics_token: str | None = field(
        default=None, metadata=_env("CRABGLAMP_METRICS_TOKEN", _stripped)
    )
    # Alert webhooks into private networks (on-premise receivers); off: public addresses only,
    # and loopback outside production.
    webhook_allow_private: bool = field(
        default=False, metadata=_env("CRABGLAMP_WEBHOOK_ALLOW_PRIVATE", _truthy)
    )
    thresholds: Thresholds = field(default_factory=Thresholds)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    live: LiveSettings = field(default_factory=LiveSettings)

    ALLOW_ZERO: ClassVar[bool] = False

    @property
    def webhook_targets(self) -> WebhookTargets:
        return WebhookTargets(
            allow_loopback=self.webhook_allow_private or not self.production,
            allow_private=self.webhook_allow_private,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        settings: Settings = _read(cls, os.environ if environ is None else environ)
        return settings

    @classmethod
    def env_names(cls) -> list[str]:
        """Every variable `from_env` reads."""
        return [name for name, _field, _group in _variables(cls)]


def _variables(cls: type[Any]) -> Iterator[tuple[str, Any, type[Any]]]:
    """(variable, field, the class the field belongs to) for every variable, groups flattened."""
    for f in fields(cls):
        group = _GROUPS.get(f.type) if isinstance(f.type, str) else None
        if group is not None:
            yield from _variables(group)
        else:
            yield f.metadata.get("env") or cls.ENV_PREFIX + f.name.upper(), f, cls


def _read(cls: type[Any], environ: Mapping[str, str]) -> Any:
    values: dict[str, Any] = {}
    for f in fields(cls):
        group = _GROUPS.get(f.type) if isinstance(f.type, str) else None
        if group is not None:
            values[f.name] = _read(group, environ)
            continue
        name = f.metadata.get("env") or cls.ENV_PREFIX + f.name.upper()
        raw = environ.get(name)
        parse = f.metadata.get("parse")
        if parse is not None:
            if raw is not None and raw.strip():
                values[f.name] = parse(raw)
        elif f.type in ("int", "float"):
            if raw is not None and raw.strip():
                values[f.name] = _number(name, raw, int if f.type == "int" else float, cls)
        elif raw:  # an optional string: empty is unset
            values[f.name] = raw
    return cls(**values)


def _number(name: str, raw: str, kind: type[int] | type[float], cls: type[Any]) -> float:
    try:
        value = kind(raw.strip())
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if cls.ALLOW_ZERO and value < 0:
        raise ValueError(f"{name} must not be negative")
    if not cls.ALLOW_ZERO and value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value
