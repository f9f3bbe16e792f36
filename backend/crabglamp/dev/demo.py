"""`crabglamp demo`: realistic, deterministic demo data with the three anomalies of DESIGN 1 planted.

Every event is a pure function of (seed, scale, the demo's first day, the thing that spends, its
time slot) and carries a stable id, so a re-run goes through the Ingestor's idempotency: what
exists is skipped, what happened since the last run is topped up, nothing is doubled. Only the
planted anomalies are placed relative to now (their ids name their own minute or day).
"""

from __future__ import annotations

import bisect
import math
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, TextIO

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import make_engine, read_transaction, write_transaction
from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import ComputeRecord, IngestError, LlmRecord, Record, VoiceRecord
from crabglamp.models import (
    Account,
    Agent,
    ComputeInterval,
    LlmDaily,
    LlmEvent,
    Member,
    PlainVm,
    VirtualKey,
    VoiceDaily,
)
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import as_utc, day_start, month_period, utcnow
from crabglamp.prices import DEFAULT_CATALOG, PriceBook, load_price_book
from crabglamp.settings import Settings

BATCH_SIZE: Final = 10_000
_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_DNS, "demo.usage.crabglamp")


def _uuid(kind: str, name: str) -> uuid.UUID:
    # Ids come from names, not from the seed: the dev sign-in and the tests need them as constants,
    # and an organisation's clerk id is unique, so two seeds could never share one database anyway.
    return uuid.uuid5(_NAMESPACE, f"{kind}/{name}")


class DemoError(RuntimeError):
    """The demo cannot be seeded as asked (another seed's demo in the way, a bad scale)."""


# People and accounts


@dataclass(frozen=True, slots=True)
class DemoUser:
    user_id: str
    display_name: str
    org_id: str | None
    org_role: str | None
    is_platform_admin: bool
    account_id: uuid.UUID | None

    @property
    def is_admin(self) -> bool:
        return self.is_platform_admin


ACME_ACCOUNT_ID: Final = _uuid("account", "acme")
BOB_ACCOUNT_ID: Final = _uuid("account", "bob")
GLOBEX_ACCOUNT_ID: Final = _uuid("account", "globex")
DEMO_ACCOUNT_IDS: Final = (ACME_ACCOUNT_ID, BOB_ACCOUNT_ID, GLOBEX_ACCOUNT_ID)

# fmt: off
DEMO_USERS: Final = (
    DemoUser("user_demo_alice", "Alice — admin of Acme", "org_demo_acme", "admin", False,
             ACME_ACCOUNT_ID),
    DemoUser("user_demo_carol", "Carol — member of Acme", "org_demo_acme", "member", False,
             ACME_ACCOUNT_ID),
    DemoUser("user_demo_bob", "Bob — personal account", None, None, False, BOB_ACCOUNT_ID),
    DemoUser("user_demo_dave", "Dave — admin of Globex", "org_demo_globex", "admin", False,
             GLOBEX_ACCOUNT_ID),
    DemoUser("user_demo_admin", "Platform admin (every account)", None, None, True, None),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class _AccountSpec:
    id: uuid.UUID
    name: str
    clerk_org_id: str | None
    owner_user_id: str | None
    utc_offset: int  # hours; where its people work, which shapes its daily rhythm
    members: tuple[tuple[str, str], ...] = ()


# fmt: off
ACCOUNTS: Final = (
    _AccountSpec(ACME_ACCOUNT_ID, "Acme Robotics", "org_demo_acme", None, -5,
                 (("user_demo_alice", "admin"), ("user_demo_carol", "member"))),
    _AccountSpec(BOB_ACCOUNT_ID, "Bob's workspace", None, "user_demo_bob", -8),
    _AccountSpec(GLOBEX_ACCOUNT_ID, "Globex Corporation", "org_demo_globex", None, 1,
                 (("user_demo_dave", "admin"),)),
)
# fmt: on
_OFFSET: Final = {a.id: a.utc_offset for a in ACCOUNTS}


# Rhythms: weights per local hour of the day and per weekday (Monday first)


@dataclass(frozen=True, slots=True)
class _Rhythm:
    hours: tuple[float, ...]
    week: tuple[float, ...]


# fmt: off
OFFICE: Final = _Rhythm(
    (0.05, 0.04, 0.04, 0.04, 0.05, 0.08, 0.15, 0.35, 0.75, 1.0, 1.1, 1.1,
     0.85, 1.0, 1.1, 1.05, 0.9, 0.65, 0.4, 0.28, 0.2, 0.15, 0.1, 0.07),
    (1.0, 1.06, 1.05, 1.02, 0.86, 0.22, 0.18),
)
ALWAYS: Final = _Rhythm(
    (0.45, 0.4, 0.38, 0.36, 0.38, 0.45, 0.6, 0.8, 0.95, 1.0, 1.05, 1.05,
     1.0, 1.0, 1.05, 1.05, 1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5),
    (1.0, 1.02, 1.02, 1.0, 0.96, 0.8, 0.76),
)
STEADY: Final = _Rhythm((1.0,) * 24, (1.0,) * 7)
EVENING: Final = _Rhythm(
    (0.15, 0.08, 0.03, 0.02, 0.02, 0.02, 0.05, 0.15, 0.2, 0.25, 0.3, 0.35,
     0.4, 0.35, 0.3, 0.3, 0.35, 0.5, 0.8, 1.0, 1.1, 1.0, 0.7, 0.35),
    (0.8, 0.75, 0.8, 0.85, 0.9, 1.5, 1.4),
)
NIGHTLY: Final = _Rhythm(
    (0.9, 1.0, 1.0, 0.95, 0.8, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
     0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.4, 0.6, 0.8),
    (1.0,) * 7,
)
# fmt: on
# A batch job that runs once a week, on Sunday night: every other day is zero.
WEEKLY_JOB: Final = _Rhythm((0, 0, 1.0, 0.6) + (0,) * 20, (0, 0, 0, 0, 0, 0, 1.0))


# What spends


@dataclass(frozen=True, slots=True)
class _AgentSpec:
    no: int
    account_id: uuid.UUID
    name: str
    running_cents_per_hour: float
    paused_cents_per_hour: float
    schedule: str  # "always" | "office" | "evening"
    voice_per_day: float = 0.0
    voice_models: tuple[tuple[str, float], ...] = ()
    voice_key: str | None = None  # the key its OpenAI text to speech goes through the proxy with
    id: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _uuid("agent", self.name))


@dataclass(frozen=True, slots=True)
class _VmSpec:
    no: int
    account_id: uuid.UUID
    name: str
    cents_per_hour: float
    schedule: str  # "always" | "office" | "evening" | "nightly" | "bursty"
    id: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _uuid("plain_vm", self.name))


# fmt: off
AGENTS: Final = (
    # no  account          name                  running/paused cents per hour, schedule, voice
    _AgentSpec(1, ACME_ACCOUNT_ID, "support-bot", 9.5, 1.2, "always",
               120, (("tts-1", 0.8), ("tts-1-hd", 0.2)), "support-voice"),
    _AgentSpec(2, ACME_ACCOUNT_ID, "code-reviewer", 6.0, 0.8, "office"),
    _AgentSpec(3, ACME_ACCOUNT_ID, "sales-assistant", 6.0, 0.8, "office",
               40, (("eleven_multilingual_v2", 1.0),)),
    _AgentSpec(4, BOB_ACCOUNT_ID, "research-assistant", 3.5, 0.5, "evening"),
    _AgentSpec(5, GLOBEX_ACCOUNT_ID, "customer-care", 14.0, 1.5, "always",
               220, (("tts-1-hd", 0.6), ("eleven_flash_v2_5", 0.4)), "care-frontline"),
    _AgentSpec(6, GLOBEX_ACCOUNT_ID, "data-pipeline", 11.0, 1.0, "always"),
    _AgentSpec(7, GLOBEX_ACCOUNT_ID, "translator", 6.0, 0.8, "office"),
    _AgentSpec(8, GLOBEX_ACCOUNT_ID, "fraud-screener", 9.0, 1.0, "always"),
    _AgentSpec(9, GLOBEX_ACCOUNT_ID, "meeting-notes", 5.0, 0.6, "office",
               30, (("gpt-4o-mini-tts", 1.0),)),
    _AgentSpec(10, GLOBEX_ACCOUNT_ID, "hr-helpdesk", 4.0, 0.5, "office"),
)
# fmt: on
_AGENT: Final = {a.name: a for a in AGENTS}

PLAIN_VMS: Final = (
    _VmSpec(1, ACME_ACCOUNT_ID, "build-box", 18.0, "office"),
    _VmSpec(2, ACME_ACCOUNT_ID, "staging-db", 6.5, "always"),
    _VmSpec(3, BOB_ACCOUNT_ID, "bob-devbox", 4.0, "evening"),
    _VmSpec(4, GLOBEX_ACCOUNT_ID, "etl-runner", 22.0, "nightly"),
    _VmSpec(5, GLOBEX_ACCOUNT_ID, "gpu-worker-1", 240.0, "bursty"),
    _VmSpec(6, GLOBEX_ACCOUNT_ID, "analytics-db", 32.0, "always"),
    _VmSpec(7, GLOBEX_ACCOUNT_ID, "jump-host", 1.5, "always"),
)

# (model, share of the key's requests, typical input tokens, typical output tokens)
_Mix = tuple[tuple[str, float, int, int], ...]


@dataclass(frozen=True, slots=True)
class _KeySpec:
    no: int
    account_id: uuid.UUID
    name: str
    provider: str | None
    agent: str | None
    per_day: float  # requests on an average weekday at scale 1
    mix: _Mix
    rhythm: _Rhythm
    # The cap is this many times the key's expected month; below ~1.5 a busy week would alarm.
    cap_factor: float = 4.0
    # Planted keys keep their volume at every scale: their story is told by their own numbers.
    unscaled: bool = False
    min_per_day: float = 0.0  # a floor under the scaled volume
    # From the demo's second month on (the current month of a fresh demo) this key grows faster.
    second_month_boost: float = 1.0
    batch_discount: bool = False  # costs reported by the caller (Batch API at half price)
    cap_cents: int | None = None  # instead of cap_factor, for a key that only speaks
    id: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _uuid("virtual_key", self.name))

    def requests_per_day(self, scale: float) -> float:
        return self.per_day if self.unscaled else max(self.per_day * scale, self.min_per_day)


_ACME, _BOB, _GLOBEX = ACME_ACCOUNT_ID, BOB_ACCOUNT_ID, GLOBEX_ACCOUNT_ID

# fmt: off
KEYS: Final = (
    # Acme Robotics: a US robotics company, busy in US office hours
    _KeySpec(1, _ACME, "support-prod", "openai", "support-bot", 700,
             (("gpt-4o", 0.55, 3000, 600), ("gpt-4o-mini", 0.45, 1800, 350)), ALWAYS,
             second_month_boost=1.6, min_per_day=150),
    _KeySpec(2, _ACME, "support-staging", "openai", "support-bot", 80,
             (("gpt-4o-mini", 1.0, 1600, 300),), OFFICE, cap_factor=2.2),
    _KeySpec(3, _ACME, "code-review", "anthropic", "code-reviewer", 260,
             (("claude-sonnet-4-5", 0.8, 8000, 1200), ("claude-haiku-4-5", 0.2, 4000, 600)),
             OFFICE, cap_factor=3.0),
    _KeySpec(4, _ACME, "code-review-fallback", "google", "code-reviewer", 40,
             (("gemini-2.5-pro", 1.0, 7000, 1100),), OFFICE),
    _KeySpec(5, _ACME, "sales-outreach", "openai", "sales-assistant", 200,
             (("gpt-4.1-mini", 0.7, 2200, 500), ("gpt-4.1", 0.3, 2600, 700)), OFFICE),
    _KeySpec(6, _ACME, "sales-research", "mistral", "sales-assistant", 60,
             (("mistral-large-latest", 1.0, 3000, 800),), OFFICE, cap_factor=2.0),
    # A Zapier integration nobody remembers: cents a day for weeks, until its token leaks.
    _KeySpec(7, _ACME, "legacy-zapier", "openai", None, 60,
             (("gpt-4o", 0.7, 1200, 300), ("gpt-4o-mini", 0.3, 900, 200)), STEADY,
             cap_factor=100.0, unscaled=True),
    _KeySpec(8, _ACME, "ci-evals", "anthropic", None, 150,
             (("claude-haiku-4-5", 1.0, 3000, 400),), OFFICE, cap_factor=2.0),
    _KeySpec(9, _ACME, "dev-alice", "openai", None, 40,
             (("gpt-5", 0.4, 2500, 900), ("gpt-5-mini", 0.6, 2000, 600)), OFFICE),
    _KeySpec(10, _ACME, "dev-carol", "anthropic", None, 30,
             (("claude-sonnet-4-5", 0.9, 4000, 900), ("claude-opus-4-1", 0.1, 4000, 900)),
             OFFICE, cap_factor=2.5),
    # Bob's workspace: evenings and weekends
    _KeySpec(11, _BOB, "bob-playground", "openai", None, 25,
             (("gpt-5-mini", 0.6, 1500, 500), ("gpt-4o-mini", 0.4, 1200, 300)), EVENING,
             cap_factor=2.0),
    _KeySpec(12, _BOB, "bob-claude", "anthropic", "research-assistant", 20,
             (("claude-sonnet-4", 1.0, 5000, 1000),), EVENING),
    _KeySpec(13, _BOB, "bob-gemini", "google", None, 10,
             (("gemini-2.5-flash", 1.0, 3000, 700),), EVENING),
    # Globex Corporation: a large European company
    _KeySpec(14, _GLOBEX, "care-frontline", "openai", "customer-care", 1100,
             (("gpt-4o-mini", 0.8, 2000, 400), ("gpt-4.1", 0.2, 2500, 500)), ALWAYS,
             cap_factor=2.5),
    _KeySpec(15, _GLOBEX, "care-escalations", "anthropic", "customer-care", 200,
             (("claude-sonnet-4-5", 1.0, 6000, 900),), ALWAYS),
    _KeySpec(16, _GLOBEX, "pipeline-enrich", "google", "data-pipeline", 700,
             (("gemini-2.5-flash", 0.6, 2500, 300), ("gemini-2.5-flash-lite", 0.4, 1500, 200)),
             NIGHTLY),
    _KeySpec(17, _GLOBEX, "pipeline-embeddings", "openai", "data-pipeline", 600,
             (("text-embedding-3-small", 1.0, 700, 0),), NIGHTLY),
    # A weekly job on the Batch API; one day a script loops on the live endpoint instead.
    _KeySpec(18, _GLOBEX, "nightly-batch", "openai", "data-pipeline", 300,
             (("gpt-4.1-mini", 1.0, 2500, 500),), WEEKLY_JOB,
             cap_factor=400.0, unscaled=True, batch_discount=True),
    _KeySpec(19, _GLOBEX, "translator-eu", "mistral", "translator", 300,
             (("mistral-medium-latest", 0.6, 1800, 1600), ("mistral-small-latest", 0.4, 1200, 1000)),
             OFFICE),
    _KeySpec(20, _GLOBEX, "fraud-screen", "openai", "fraud-screener", 250,
             (("o4-mini", 0.6, 1500, 1200), ("gpt-4.1-nano", 0.4, 1000, 100)), ALWAYS,
             cap_factor=3.0),
    _KeySpec(21, _GLOBEX, "meeting-notes", "google", "meeting-notes", 150,
             (("gemini-2.5-pro", 1.0, 9000, 1200),), OFFICE),
    _KeySpec(22, _GLOBEX, "hr-helpdesk", "mistral", "hr-helpdesk", 60,
             (("mistral-small-latest", 1.0, 1500, 400),), OFFICE, cap_factor=2.0),
    # One key for every provider: the analysts' SQL copilot routes by task.
    _KeySpec(23, _GLOBEX, "analytics-sql", None, None, 120,
             (("claude-sonnet-4", 0.5, 5000, 800), ("gpt-4.1", 0.3, 4000, 700),
              ("gemini-2.5-pro", 0.2, 5000, 900)), OFFICE),
    _KeySpec(24, _GLOBEX, "globex-sandbox", "openai", None, 50,
             (("gpt-5-nano", 0.7, 1500, 600), ("gpt-5", 0.3, 2000, 800)), OFFICE, cap_factor=2.0),
    _KeySpec(25, _GLOBEX, "codegen-mistral", "mistral", None, 90,
             (("codestral-latest", 1.0, 3000, 500),), OFFICE),
    # The support bot's voice: text to speech only, kept apart from its LLM key's cap.
    _KeySpec(26, _ACME, "support-voice", "openai", "support-bot", 0, (), ALWAYS,
             cap_cents=10_000),
)
# fmt: on
_KEY: Final = {k.name: k for k in KEYS}

# The three anomalies of DESIGN section 1, one key each.
PLANTED: Final = {
    "spike_key_id": _KEY["legacy-zapier"].id,  # SPIKE_ON_QUIET_KEY: its token leaked
    "cap_key_id": _KEY["support-prod"].id,  # CAP_TRAJECTORY: heading past its cap
    "runaway_key_id": _KEY["nightly-batch"].id,  # RUNAWAY_DAY: a script looped for hours
    "runaway_agent_id": _AGENT["data-pipeline"].id,
}
SPIKE_HOURS: Final = 6
SPIKE_MODEL: Final = "gpt-4.1"
SPIKE_PER_MINUTE: Final = 4.0  # about 80 of the key's ordinary days in six hours
RUNAWAY_MODEL: Final = "gpt-4.1"
RUNAWAY_PER_MINUTE: Final = 14.0
RUNAWAY_START: Final = timedelta(hours=1, minutes=12)
RUNAWAY_MINUTES: Final = 7 * 60
RUNAWAY_DAYS_AGO: Final = 3
# A day with this many requests on the runaway key is the runaway, whichever run planted it.
_RUNAWAY_MIN_REQUESTS: Final = 1000

_PROVIDER: Final = {p.model: p.provider for p in DEFAULT_CATALOG}
_PRICE: Final = {
    p.model: (p.input_micros_per_mtok, p.output_micros_per_mtok) for p in DEFAULT_CATALOG
}
_TOKEN_SIGMA: Final = 0.5
# Lognormal token counts without a gauss() per token: draws from one fixed table are as good
# for charts and several times cheaper.
_SPREAD_SIZE: Final = 4096


def _spread_table() -> tuple[float, ...]:
    rng = random.Random(0)
    return tuple(math.exp(_TOKEN_SIGMA * rng.gauss(0.0, 1.0)) for _ in range(_SPREAD_SIZE))


_SPREAD: Final = _spread_table()
_ERROR_RATE: Final = 0.004


def _expected_month_micros(spec: _KeySpec, scale: float) -> float:
    """A key's expected month of spend, from its mix and the catalog (sets its cap)."""
    if not spec.mix:
        return 0.0
    spread = math.exp(_TOKEN_SIGMA**2 / 2)
    per_request = sum(
        share * (tokens_in * _PRICE[m][0] + tokens_out * _PRICE[m][1]) * spread / 1_000_000
        for m, share, tokens_in, tokens_out in spec.mix
    ) / sum(share for _, share, _, _ in spec.mix)
    volume = spec.requests_per_day(scale) * sum(spec.rhythm.week) / 7
    growth = 1.2 * spec.second_month_boost  # a month of growth on top of the second-month boost
    return per_request * volume * 30.5 * growth


def _nice_cap_micros(micros: float) -> int:
    """Round up to 1, 2, 2.5 or 5 times a power of ten dollars; at least five dollars."""
    cents = max(micros / MICROS_PER_CENT, 500.0)
    power = 10 ** math.floor(math.log10(cents))
    for step in (1, 2, 2.5, 5, 10):
        if cents <= step * power:
            return int(step * power * MICROS_PER_CENT)
    raise AssertionError(cents)


# Results


@dataclass(slots=True)
class DemoSummary:
    now: datetime
    window_start: date
    accounts: int
    keys: int
    agents: int
    plain_vms: int
    llm_events: int
    voice_events: int
    compute_intervals: int
    inserted: int
    duplicates: int
    spike_start: datetime
    cap_key_cap_micros: int
    runaway_day: date
    seconds: float
    users: tuple[DemoUser, ...] = field(default=DEMO_USERS)


# Generating events


def _month_start_after(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _previous_month_start(day: date) -> date:
    first = day.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


@dataclass(slots=True)
class _Window:
    prefix: str
    scale: float
    start: date  # the demo's first day (a month start), fixed once seeded
    now: datetime
    spike_start: datetime
    runaway_day: date

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def second_month(self) -> date:
        return _month_start_after(self.start)

    def days(self, resume: date | None = None) -> list[date]:
        day = max(self.start, resume) if resume else self.start
        days = []
        while day <= self.today:
            days.append(day)
            day += timedelta(days=1)
        return days


def _hourly_weights(rhythm: _Rhythm, utc_offset: int) -> list[float]:
    # Local hour h is UTC hour h - offset.
    return [rhythm.hours[(h + utc_offset) % 24] for h in range(24)]


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return [c / total for c in out]


def _hour_counts(
    rng: random.Random, per_day: float, weights: Sequence[float], weekday_factor: float
) -> list[int]:
    if per_day <= 0 or weekday_factor <= 0:
        return [0] * 24
    expected = per_day * weekday_factor * math.exp(rng.gauss(0.0, 0.12))
    total = sum(weights)
    counts = []
    for weight in weights:
        lam = expected * weight / total
        # Mean lam; a little spread hour to hour, and whole requests.
        counts.append(int(max(0.0, lam * (1.0 + 0.1 * rng.gauss(0.0, 1.0))) + rng.random()))
    return counts


class _Generator:
    def __init__(self, window: _Window, prices: PriceBook) -> None:
        self.w = window
        self.prices = prices

    def _growth(self, spec: _KeySpec, day: date) -> float:
        growth = 1.0 + 0.0025 * (day - self.w.start).days
        if day >= self.w.second_month:
            growth *= spec.second_month_boost
        return growth

    def estimate(self, days: Sequence[date]) -> int:
        """About how many records the run will produce (for the progress bar)."""
        total = 0.0
        for day in days:
            for spec in KEYS:
                total += spec.requests_per_day(self.w.scale) * spec.rhythm.week[day.weekday()]
            for agent in AGENTS:
                total += agent.voice_per_day * self.w.scale
        if days:
            total += SPIKE_PER_MINUTE * SPIKE_HOURS * 60
        if self.w.runaway_day in days:
            total += RUNAWAY_PER_MINUTE * RUNAWAY_MINUTES
        return int(total * 1.05)

    def llm_day(self, spec: _KeySpec, day: date) -> list[Record]:
        w = self.w
        if not spec.mix:
            return []
        if spec.id == PLANTED["runaway_key_id"] and day == w.runaway_day:
            return []  # that night the looping script ran instead of the weekly job
        rng = random.Random(f"{w.prefix}:llm:{spec.no}:{day.toordinal()}")
        per_day = spec.requests_per_day(w.scale) * self._growth(spec, day)
        weights = _hourly_weights(spec.rhythm, _OFFSET[spec.account_id])
        counts = _hour_counts(rng, per_day, weights, spec.rhythm.week[day.weekday()])
        models = [m for m, _, _, _ in spec.mix]
        cumulative = _cumulative([share for _, share, _, _ in spec.mix])
        shapes = [(tokens_in, tokens_out) for _, _, tokens_in, tokens_out in spec.mix]
        providers = [_PROVIDER[m] for m in models]
        key_id, agent_id = spec.id, _AGENT[spec.agent].id if spec.agent else None
        midnight = day_start(day)
        now = w.now
        uniform, spread, size = rng.random, _SPREAD, _SPREAD_SIZE
        out: list[Record] = []
        for hour, count in enumerate(counts):
            if not count:
                continue
            hour_start = midnight + timedelta(hours=hour)
            if hour_start > now:
                break
            stem = f"{w.prefix}-k{spec.no:02d}-{day:%Y%m%d}{hour:02d}-"
            for i in range(count):
                ts = hour_start + timedelta(milliseconds=int(uniform() * 3_600_000))
                pick = bisect.bisect_left(cumulative, uniform()) if len(models) > 1 else 0
                typical_in, typical_out = shapes[pick]
                tokens_in = max(1, int(typical_in * spread[int(uniform() * size)]))
                tokens_out = (
                    max(1, int(typical_out * spread[int(uniform() * size)])) if typical_out else 0
                )
                failed = uniform() < _ERROR_RATE
                if ts > now:
                    continue
                cost = None
                if spec.batch_discount and not failed:
                    full = self.prices.llm_cost(
                        providers[pick], models[pick], ts, tokens_in, tokens_out
                    )
                    cost = full // 2
                out.append(
                    LlmRecord(
                        stem + str(i),
                        ts,
                        key_id,
                        providers[pick],
                        models[pick],
                        tokens_in,
                        0 if failed else tokens_out,
                        cost,
                        agent_id,
                        "error" if failed else "ok",
                    )
                )
        return out

    def voice_day(self, agent: _AgentSpec, day: date) -> list[Record]:
        if not agent.voice_models:
            return []
        w = self.w
        rng = random.Random(f"{w.prefix}:voice:{agent.no}:{day.toordinal()}")
        rhythm = OFFICE if agent.schedule == "office" else ALWAYS
        weights = _hourly_weights(rhythm, _OFFSET[agent.account_id])
        growth = 1.0 + 0.0025 * (day - w.start).days
        counts = _hour_counts(
            rng, agent.voice_per_day * w.scale * growth, weights, rhythm.week[day.weekday()]
        )
        models = [m for m, _ in agent.voice_models]
        cumulative = _cumulative([share for _, share in agent.voice_models])
        # Text to speech through the proxy carries the agent's voice key; ElevenLabs is direct.
        voice_key = _KEY[agent.voice_key].id if agent.voice_key else None
        midnight = day_start(day)
        out: list[Record] = []
        for hour, count in enumerate(counts):
            hour_start = midnight + timedelta(hours=hour)
            if hour_start > w.now:
                break
            for i in range(count):
                ts = hour_start + timedelta(milliseconds=int(rng.random() * 3_600_000))
                model = models[bisect.bisect_left(cumulative, rng.random())]
                characters = max(20, int(450 * math.exp(0.6 * rng.gauss(0.0, 1.0))))
                if ts > w.now:
                    continue
                out.append(
                    VoiceRecord(
                        f"{w.prefix}-v{agent.no:02d}-{day:%Y%m%d}{hour:02d}-{i}",
                        ts,
                        agent.account_id,
                        model,
                        characters,
                        agent_id=agent.id,
                        key_id=voice_key if _PROVIDER[model] == "openai" else None,
                    )
                )
        return out

    def spike(self, day: date) -> list[Record]:
        """The leaked token: a flood of large gpt-4.1 requests for the last six hours."""
        w = self.w
        spec = _KEY["legacy-zapier"]
        out: list[Record] = []
        minute = max(w.spike_start, day_start(day))
        end = min(w.now, day_start(day + timedelta(days=1)))
        while minute < end:
            # Each minute is its own pure function, so a later run extends the flood consistently.
            rng = random.Random(f"{w.prefix}:spike:{minute:%Y%m%d%H%M}")
            count = int(max(0.0, SPIKE_PER_MINUTE + 1.5 * rng.gauss(0.0, 1.0)) + rng.random())
            for i in range(count):
                ts = minute + timedelta(milliseconds=int(rng.random() * 60_000))
                tokens_in = int(4000 * math.exp(_TOKEN_SIGMA * rng.gauss(0.0, 1.0)))
                tokens_out = int(900 * math.exp(_TOKEN_SIGMA * rng.gauss(0.0, 1.0)))
                if ts <= w.now:
                    out.append(
                        LlmRecord(
                            f"{w.prefix}-k{spec.no:02d}-s{minute:%Y%m%d%H%M}-{i}",
                            ts,
                            spec.id,
                            "openai",
                            SPIKE_MODEL,
                            max(1, tokens_in),
                            max(1, tokens_out),
                        )
                    )
            minute += timedelta(minutes=1)
        return out

    def runaway(self, day: date) -> list[Record]:
        """The runaway script: hours of one model in a loop, in the small hours of one day."""
        w = self.w
        if day != w.runaway_day:
            return []
        spec = _KEY["nightly-batch"]
        agent_id = _AGENT["data-pipeline"].id
        out: list[Record] = []
        first = day_start(day) + RUNAWAY_START
        for n in range(RUNAWAY_MINUTES):
            minute = first + timedelta(minutes=n)
            if minute > w.now:
                break
            rng = random.Random(f"{w.prefix}:runaway:{minute:%Y%m%d%H%M}")
            # The loop slows down as the upstream starts rate-limiting it.
            rate = RUNAWAY_PER_MINUTE * (1.15 - 0.3 * n / RUNAWAY_MINUTES)
            count = int(max(0.0, rate + 2.5 * rng.gauss(0.0, 1.0)) + rng.random())
            for i in range(count):
                ts = minute + timedelta(milliseconds=int(rng.random() * 60_000))
                tokens_in = int(3000 * math.exp(0.2 * rng.gauss(0.0, 1.0)))
                tokens_out = int(700 * math.exp(0.3 * rng.gauss(0.0, 1.0)))
                if ts <= w.now:
                    out.append(
                        LlmRecord(
                            f"{w.prefix}-k{spec.no:02d}-r{minute:%Y%m%d%H%M}-{i}",
                            ts,
                            spec.id,
                            "openai",
                            RUNAWAY_MODEL,
                            max(1, tokens_in),
                            max(1, tokens_out),
                            agent_id=agent_id,
                        )
                    )
        return out

    def compute(self) -> list[Record]:
        out: list[Record] = []
        for agent in AGENTS:
            for start, end, state in self._segments(
                f"a{agent.no}", agent.schedule, _OFFSET[agent.account_id], paused=True
            ):
                rate = (
                    agent.running_cents_per_hour
                    if state == "running"
                    else agent.paused_cents_per_hour
                )
                out.append(
                    ComputeRecord(
                        f"{self.w.prefix}-a{agent.no:02d}-{start:%Y%m%d%H%M%S}",
                        agent.account_id,
                        start,
                        end,
                        round(rate * MICROS_PER_CENT),
                        state,
                        agent_id=agent.id,
                    )
                )
        for vm in PLAIN_VMS:
            for start, end, state in self._segments(
                f"m{vm.no}", vm.schedule, _OFFSET[vm.account_id], paused=False
            ):
                out.append(
                    ComputeRecord(
                        f"{self.w.prefix}-m{vm.no:02d}-{start:%Y%m%d%H%M%S}",
                        vm.account_id,
                        start,
                        end,
                        round(vm.cents_per_hour * MICROS_PER_CENT),
                        state,
                        plain_vm_id=vm.id,
                    )
                )
        return out

    def _segments(
        self, name: str, schedule: str, utc_offset: int, *, paused: bool
    ) -> Iterator[tuple[datetime, datetime | None, str]]:
        """Intervals from the demo's first day to now; the one still running now is open."""
        w = self.w
        rng = random.Random(f"{w.prefix}:compute:{name}")
        origin = day_start(w.start)
        horizon = w.now + timedelta(days=12)
        running = list(_running_windows(rng, schedule, origin, horizon, utc_offset))
        segments: list[tuple[datetime, datetime, str]] = []
        cursor = origin
        for start, end in running:
            if paused and start > cursor:
                segments.append((cursor, start, "paused"))
            segments.append((start, end, "running"))
            cursor = end
        for start, end, state in segments:
            if start > w.now:
                break
            yield start, (end if end <= w.now else None), state


def _running_windows(
    rng: random.Random, schedule: str, origin: datetime, horizon: datetime, utc_offset: int
) -> Iterator[tuple[datetime, datetime]]:
    """When an agent or VM runs, whole seconds, in order, not overlapping."""

    def at(day: date, local_hours: float) -> datetime:
        return day_start(day) + timedelta(seconds=int((local_hours - utc_offset) * 3600))

    if schedule == "always":
        # Up for a day or three, then a short restart or maintenance pause.
        cursor = origin
        while cursor < horizon:
            end = cursor + timedelta(seconds=int(rng.uniform(6, 40) * 3600))
            yield cursor, end
            cursor = end + timedelta(seconds=int(rng.uniform(0.2, 1.5) * 3600))
        return
    if schedule == "bursty":
        cursor = origin + timedelta(seconds=int(rng.uniform(1, 4) * 86_400))
        while cursor < horizon:
            end = cursor + timedelta(seconds=int(rng.uniform(8, 60) * 3600))
            yield cursor, end
            cursor = end + timedelta(seconds=int(rng.uniform(3, 8) * 86_400))
        return
    day = origin.date() - timedelta(days=1)
    last_end = origin
    while day_start(day) < horizon:
        weekend = day.weekday() >= 5
        windows: list[tuple[float, float]] = []
        if schedule == "office" and not weekend:
            windows.append((8 + rng.uniform(-0.5, 0.75), 17.5 + rng.uniform(-0.5, 1.5)))
        elif schedule == "evening":
            if weekend and rng.random() < 0.7:
                windows.append((13 + rng.uniform(-1, 1), 17 + rng.uniform(-1, 1)))
            if rng.random() < 0.6:
                windows.append((18.5 + rng.uniform(-0.5, 1), 22.5 + rng.uniform(-0.5, 1)))
        elif schedule == "nightly":
            # The ETL window is in UTC, wherever its owners are.
            windows.append(
                (0.3 + rng.uniform(0, 0.4) + utc_offset, 3.8 + rng.uniform(-0.3, 0.6) + utc_offset)
            )
        for local_start, local_end in windows:
            start, end = at(day, local_start), at(day, local_end)
            if start >= last_end and end > start:
                yield start, end
                last_end = end
        day += timedelta(days=1)


# Progress


class _Progress:
    """One line on stderr: a bar on a terminal, a line per tenth elsewhere (CI logs)."""

    WIDTH = 32

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.done = 0
        self.tty = bool(stream is not None and stream.isatty())
        self._shown_tenth = -1
        self._last = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        self._show(min(self.done / self.total, 0.99))

    def finish(self) -> None:
        self._show(1.0, force=True)
        if self.stream is not None and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, fraction: float, force: bool = False) -> None:
        if self.stream is None:
            return
        filled = int(fraction * self.WIDTH)
        line = (
            f"seeding demo data [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{int(fraction * 100):3d}%  {self.done:,} events"
        )
        if self.tty:
            moment = time.monotonic()
            if force or moment - self._last >= 0.1:
                self._last = moment
                self.stream.write("\r" + line)
                self.stream.flush()
            return
        tenth = int(fraction * 10)
        if force or tenth > self._shown_tenth:
            self._shown_tenth = tenth
            self.stream.write(line + "\n")
            self.stream.flush()


# Seeding


def _insert_ignore(conn: AsyncConnection, model: Any) -> Any:
    table = table_of(model)
    return insert_for(conn, table).on_conflict_do_nothing()


async def _ensure_entities(conn: AsyncConnection, window: _Window) -> None:
    accounts = table_of(Account)
    org_ids = [a.clerk_org_id for a in ACCOUNTS if a.clerk_org_id]
    rows = await conn.execute(
        select(accounts.c.id, accounts.c.clerk_org_id).where(accounts.c.clerk_org_id.in_(org_ids))
    )
    for account_id, org_id in rows:
        if account_id not in DEMO_ACCOUNT_IDS:
            raise DemoError(
                f"an account that is not the demo's already has clerk org id {org_id!r}; "
                "seed the demo into a fresh database"
            )
    await conn.execute(
        _insert_ignore(conn, Account),
        [
            {
                "id": a.id,
                "name": a.name,
                "clerk_org_id": a.clerk_org_id,
                "owner_user_id": a.owner_user_id,
            }
            for a in ACCOUNTS
        ],
    )
    await conn.execute(
        _insert_ignore(conn, Member),
        [
            {"account_id": a.id, "user_id": user, "role": role}
            for a in ACCOUNTS
            for user, role in a.members
        ],
    )
    await conn.execute(
        _insert_ignore(conn, Agent),
        [{"id": a.id, "account_id": a.account_id, "name": a.name} for a in AGENTS],
    )
    await conn.execute(
        _insert_ignore(conn, PlainVm),
        [
            {
                "id": v.id,
                "account_id": v.account_id,
                "name": v.name,
                "cents_per_hour_micros": round(v.cents_per_hour * MICROS_PER_CENT),
            }
            for v in PLAIN_VMS
        ],
    )
    created = day_start(window.start) - timedelta(days=40)
    await conn.execute(
        _insert_ignore(conn, VirtualKey),
        [
            {
                "id": k.id,
                "account_id": k.account_id,
                "name": k.name,
                "provider": k.provider,
                "agent_id": _AGENT[k.agent].id if k.agent else None,
                "spend_cap_micros": (
                    k.cap_cents * MICROS_PER_CENT
                    if k.cap_cents
                    else _nice_cap_micros(_expected_month_micros(k, window.scale) * k.cap_factor)
                ),
                "status": "active",
                "created_at": created + timedelta(hours=k.no * 7),
            }
            for k in KEYS
        ],
    )


@dataclass(frozen=True, slots=True)
class _Previous:
    """What earlier runs left: their prefix, the demo's first day and the last day recorded."""

    prefix: str | None
    first_day: date | None
    last_day: date | None


async def _previous_run(conn: AsyncConnection) -> _Previous:
    events = table_of(LlmEvent)
    daily = table_of(LlmDaily)
    some_id = (
        await conn.execute(
            select(events.c.id).where(events.c.key_id == PLANTED["spike_key_id"]).limit(1)
        )
    ).scalar()
    first, last = (
        await conn.execute(
            select(func.min(daily.c.day), func.max(daily.c.day)).where(
                daily.c.account_id.in_(DEMO_ACCOUNT_IDS)
            )
        )
    ).one()
    return _Previous(str(some_id).split("-k", 1)[0] if some_id else None, first, last)


async def _earlier_runaway(conn: AsyncConnection, today: date) -> date | None:
    """A runaway planted by an earlier run stays the runaway; a re-run does not plant another."""
    daily = table_of(LlmDaily)
    found = (
        await conn.execute(
            select(daily.c.day)
            .where(
                and_(
                    daily.c.key_id == PLANTED["runaway_key_id"],
                    daily.c.model == RUNAWAY_MODEL,
                    daily.c.request_count >= _RUNAWAY_MIN_REQUESTS,
                    daily.c.day >= today - timedelta(days=40),
                    daily.c.day <= today,
                )
            )
            .order_by(daily.c.day.desc())
            .limit(1)
        )
    ).first()
    return found[0] if found else None


def _cap_for(spent_micros: int, now: datetime) -> int:
    """A cap that month-to-date spend is 80-95% of (the dashboard's warning colours start at 75%),
    below the month-end projection, at any moment of the month: the 1st included."""
    month = month_period(now.year, now.month)
    elapsed = (now - month.start_dt).total_seconds() / (
        month.end_dt - month.start_dt
    ).total_seconds()
    elapsed = min(max(elapsed, 1e-6), 1.0)
    # 82%, not 80: rounding the cap up to three digits may take a point off.
    share = max(0.82 + 0.13 * elapsed, elapsed + (1.0 - elapsed) / 2)
    exact = spent_micros / share
    # Three significant digits when they keep the story; finer when the month is nearly over.
    digits = 3
    while True:
        step = 10 ** max(0, math.floor(math.log10(max(exact, 1.0))) - digits + 1)
        cap = int(math.ceil(exact / step) * step)
        if spent_micros / elapsed > cap or step == 1:
            return max(cap, 1)
        digits += 1


async def _set_cap(conn: AsyncConnection, now: datetime) -> int:
    """Set the planted key's cap from its month to date (each run: the month may have turned).

    The key's text to speech goes through its own key (support-voice), so LLM spend is all the
    proxy counts against this cap."""
    daily = table_of(LlmDaily)
    month = month_period(now.year, now.month)
    spent = (
        await conn.execute(
            select(func.coalesce(func.sum(daily.c.cost_micros), 0)).where(
                and_(
                    daily.c.key_id == PLANTED["cap_key_id"],
                    daily.c.day >= month.start,
                    daily.c.day <= month.end,
                )
            )
        )
    ).scalar_one()
    keys = table_of(VirtualKey)
    if not spent:
        row = await conn.execute(
            select(keys.c.spend_cap_micros).where(keys.c.id == PLANTED["cap_key_id"])
        )
        return int(row.scalar_one() or 0)
    cap = _cap_for(int(spent), now)
    await conn.execute(
        update(keys).where(keys.c.id == PLANTED["cap_key_id"]).values(spend_cap_micros=cap)
    )
    return cap


async def _count(conn: AsyncConnection, model: Any, column: str | None) -> int:
    table = table_of(model)
    measure = func.count() if column is None else func.sum(table.c[column])
    value = (
        await conn.execute(
            select(func.coalesce(measure, 0)).where(table.c.account_id.in_(DEMO_ACCOUNT_IDS))
        )
    ).scalar_one()
    return int(value)


async def seed_engine(
    engine: AsyncEngine,
    seed: int = 7,
    *,
    scale: float = 1.0,
    now: datetime | None = None,
    progress: TextIO | None = None,
) -> DemoSummary:
    """Seed (or top up to now) the demo in a migrated database; returns what is there."""
    if not 0 < scale <= 10:
        raise DemoError(f"scale must be in (0, 10], got {scale}")
    began = time.monotonic()
    now = as_utc(now or utcnow())
    prefix = f"demo{seed}" if scale == 1 else f"demo{seed}s{scale:g}"
    async with read_transaction(engine) as conn:
        previous = await _previous_run(conn)
        earlier_runaway = await _earlier_runaway(conn, now.date())
        prices = await load_price_book(conn)
    if previous.prefix is not None and previous.prefix != prefix:
        raise DemoError(
            f"this database holds the demo of {previous.prefix!r}, not {prefix!r}; "
            "re-run with the same --seed (and scale) or use a fresh database"
        )
    start = previous.first_day.replace(day=1) if previous.first_day else None
    window = _Window(
        prefix=prefix,
        scale=scale,
        start=start or _previous_month_start(now.date()),
        now=now,
        spike_start=(now - timedelta(hours=SPIKE_HOURS)).replace(second=0, microsecond=0),
        runaway_day=earlier_runaway or now.date() - timedelta(days=RUNAWAY_DAYS_AGO),
    )
    async with write_transaction(engine) as conn:
        await _ensure_entities(conn, window)

    # Batches go in day order, so every day before the last one recorded is complete: a re-run
    # (or a run after an interruption) starts there and the Ingestor skips what it already has.
    days = window.days(previous.last_day)
    ingestor = Ingestor(engine, prices)
    generator = _Generator(window, prices)
    bar = _Progress(progress, generator.estimate(days))
    counts = [0, 0]  # inserted, already there

    async def flush(chunk: Sequence[Record]) -> None:
        try:
            result = await ingestor.record(chunk)
        except IngestError as exc:
            raise DemoError(
                "this database holds demo events that this version generates differently "
                f"({exc}); seed the demo into a fresh database"
            ) from exc
        counts[0] += result.inserted
        counts[1] += result.duplicates
        bar.advance(len(chunk))

    batch: list[Record] = generator.compute()
    for day in days:
        for spec in KEYS:
            batch.extend(generator.llm_day(spec, day))
        for agent in AGENTS:
            batch.extend(generator.voice_day(agent, day))
        batch.extend(generator.spike(day))
        batch.extend(generator.runaway(day))
        while len(batch) >= BATCH_SIZE:
            await flush(batch[:BATCH_SIZE])
            batch = batch[BATCH_SIZE:]
    if batch:
        await flush(batch)

    async with write_transaction(engine) as conn:
        cap = await _set_cap(conn, now)
    async with read_transaction(engine) as conn:
        llm = await _count(conn, LlmDaily, "request_count")
        voice = await _count(conn, VoiceDaily, "request_count")
        compute = await _count(conn, ComputeInterval, None)
    bar.finish()
    return DemoSummary(
        now=now,
        window_start=window.start,
        accounts=len(ACCOUNTS),
        keys=len(KEYS),
        agents=len(AGENTS),
        plain_vms=len(PLAIN_VMS),
        llm_events=llm,
        voice_events=voice,
        compute_intervals=compute,
        inserted=counts[0],
        duplicates=counts[1],
        spike_start=window.spike_start,
        cap_key_cap_micros=cap,
        runaway_day=window.runaway_day,
        seconds=time.monotonic() - began,
    )


def describe(summary: DemoSummary, database_url: str) -> str:
    """The summary `crabglamp demo` prints: what is there and whom to sign in as."""
    accounts = ", ".join(
        f"{a.name} ({a.clerk_org_id or 'personal: ' + str(a.owner_user_id)})" for a in ACCOUNTS
    )
    lines = [
        f"demo data ready in {summary.seconds:.1f} s  ({database_url})",
        f"  accounts   {summary.accounts}: {accounts}",
        f"  keys       {summary.keys}, agents {summary.agents}, plain VMs {summary.plain_vms}",
        f"  events     {summary.llm_events:,} LLM, {summary.voice_events:,} voice, "
        f"{summary.compute_intervals:,} compute intervals  "
        f"({summary.inserted:,} new this run, {summary.duplicates:,} already there)",
        f"  period     {summary.window_start} to {summary.now:%Y-%m-%d %H:%M} UTC",
        "  anomalies  legacy-zapier: leaked token, spiking since "
        f"{summary.spike_start:%Y-%m-%d %H:%M} UTC",
        f"             support-prod: heading past its cap of ${summary.cap_key_cap_micros / MICROS_PER_CENT / 100:,.2f} this month",
        f"             nightly-batch: runaway script on {summary.runaway_day}",
        "  sign in as " + ", ".join(f"{u.user_id} ({u.display_name})" for u in summary.users),
    ]
    return "\n".join(lines)


async def seed_demo(
    settings: Settings,
    seed: int = 7,
    *,
    scale: float = 1.0,
    now: datetime | None = None,
    echo: bool = True,
) -> DemoSummary:
    """`crabglamp demo`: seed the database of `settings` (already migrated); print a summary."""
    engine = make_engine(settings.database_url)
    try:
        summary = await seed_engine(
            engine, seed, scale=scale, now=now, progress=sys.stderr if echo else None
        )
    finally:
        await engine.dispose()
    if echo:
        print(describe(summary, settings.database_url), flush=True)
    return summary


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
