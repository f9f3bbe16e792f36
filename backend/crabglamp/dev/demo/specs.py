"""What the demo holds: its people and accounts, its agents and VMs, and its keys' traffic.

Ids come from names (`_uuid`), so the dev sign-in, the tests and a re-run all know them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from crabglamp.dev.rhythm import ALWAYS, EVENING, NIGHTLY, OFFICE, STEADY, WEEKLY_JOB, Rhythm

_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_DNS, "demo.usage.crabglamp")


def _uuid(kind: str, name: str) -> uuid.UUID:
    # Ids come from names, not from the seed: the dev sign-in and the tests need them as constants,
    # and an organisation's clerk id is unique, so two seeds could never share one database anyway.
    return uuid.uuid5(_NAMESPACE, f"{kind}/{name}")


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
class AccountSpec:
    id: uuid.UUID
    name: str
    clerk_org_id: str | None
    owner_user_id: str | None
    utc_offset: int  # hours; where its people work, which shapes its daily rhythm
    members: tuple[tuple[str, str], ...] = ()


# fmt: off
ACCOUNTS: Final = (
    AccountSpec(ACME_ACCOUNT_ID, "Acme Robotics", "org_demo_acme", None, -5,
                (("user_demo_alice", "admin"), ("user_demo_carol", "member"))),
    AccountSpec(BOB_ACCOUNT_ID, "Bob's workspace", None, "user_demo_bob", -8),
    AccountSpec(GLOBEX_ACCOUNT_ID, "Globex Corporation", "org_demo_globex", None, 1,
                (("user_demo_dave", "admin"),)),
)
# fmt: on
UTC_OFFSET: Final = {a.id: a.utc_offset for a in ACCOUNTS}

# What spends


@dataclass(frozen=True, slots=True)
class AgentSpec:
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
class VmSpec:
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
    AgentSpec(1, ACME_ACCOUNT_ID, "support-bot", 9.5, 1.2, "always",
              120, (("tts-1", 0.8), ("tts-1-hd", 0.2)), "support-voice"),
    AgentSpec(2, ACME_ACCOUNT_ID, "code-reviewer", 6.0, 0.8, "office"),
    AgentSpec(3, ACME_ACCOUNT_ID, "sales-assistant", 6.0, 0.8, "office",
              40, (("eleven_multilingual_v2", 1.0),)),
    AgentSpec(4, BOB_ACCOUNT_ID, "research-assistant", 3.5, 0.5, "evening"),
    AgentSpec(5, GLOBEX_ACCOUNT_ID, "customer-care", 14.0, 1.5, "always",
              220, (("tts-1-hd", 0.6), ("eleven_flash_v2_5", 0.4)), "care-frontline"),
    AgentSpec(6, GLOBEX_ACCOUNT_ID, "data-pipeline", 11.0, 1.0, "always"),
    AgentSpec(7, GLOBEX_ACCOUNT_ID, "translator", 6.0, 0.8, "office"),
    AgentSpec(8, GLOBEX_ACCOUNT_ID, "fraud-screener", 9.0, 1.0, "always"),
    AgentSpec(9, GLOBEX_ACCOUNT_ID, "meeting-notes", 5.0, 0.6, "office",
              30, (("gpt-4o-mini-tts", 1.0),)),
    AgentSpec(10, GLOBEX_ACCOUNT_ID, "hr-helpdesk", 4.0, 0.5, "office"),
)
# fmt: on
AGENT_BY_NAME: Final = {a.name: a for a in AGENTS}

PLAIN_VMS: Final = (
    VmSpec(1, ACME_ACCOUNT_ID, "build-box", 18.0, "office"),
    VmSpec(2, ACME_ACCOUNT_ID, "staging-db", 6.5, "always"),
    VmSpec(3, BOB_ACCOUNT_ID, "bob-devbox", 4.0, "evening"),
    VmSpec(4, GLOBEX_ACCOUNT_ID, "etl-runner", 22.0, "nightly"),
    VmSpec(5, GLOBEX_ACCOUNT_ID, "gpu-worker-1", 240.0, "bursty"),
    VmSpec(6, GLOBEX_ACCOUNT_ID, "analytics-db", 32.0, "always"),
    VmSpec(7, GLOBEX_ACCOUNT_ID, "jump-host", 1.5, "always"),
)

# (model, share of the key's requests, typical input tokens, typical output tokens)
_Mix = tuple[tuple[str, float, int, int], ...]


@dataclass(frozen=True, slots=True)
class KeySpec:
    no: int
    account_id: uuid.UUID
    name: str
    provider: str | None
    agent: str | None
    per_day: float  # requests on an average weekday at scale 1
    mix: _Mix
    rhythm: Rhythm
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
    KeySpec(1, _ACME, "support-prod", "openai", "support-bot", 700,
            (("gpt-4o", 0.55, 3000, 600), ("gpt-4o-mini", 0.45, 1800, 350)), ALWAYS,
            second_month_boost=1.6, min_per_day=150),
    KeySpec(2, _ACME, "support-staging", "openai", "support-bot", 80,
            (("gpt-4o-mini", 1.0, 1600, 300),), OFFICE, cap_factor=2.2),
    KeySpec(3, _ACME, "code-review", "anthropic", "code-reviewer", 260,
            (("claude-sonnet-4-5", 0.8, 8000, 1200), ("claude-haiku-4-5", 0.2, 4000, 600)),
            OFFICE, cap_factor=3.0),
    KeySpec(4, _ACME, "code-review-fallback", "google", "code-reviewer", 40,
            (("gemini-2.5-pro", 1.0, 7000, 1100),), OFFICE),
    KeySpec(5, _ACME, "sales-outreach", "openai", "sales-assistant", 200,
            (("gpt-4.1-mini", 0.7, 2200, 500), ("gpt-4.1", 0.3, 2600, 700)), OFFICE),
    KeySpec(6, _ACME, "sales-research", "mistral", "sales-assistant", 60,
            (("mistral-large-latest", 1.0, 3000, 800),), OFFICE, cap_factor=2.0),
    # A Zapier integration nobody remembers: cents a day for weeks, until its token leaks.
    KeySpec(7, _ACME, "legacy-zapier", "openai", None, 60,
            (("gpt-4o", 0.7, 1200, 300), ("gpt-4o-mini", 0.3, 900, 200)), STEADY,
            cap_factor=100.0, unscaled=True),
    KeySpec(8, _ACME, "ci-evals", "anthropic", None, 150,
            (("claude-haiku-4-5", 1.0, 3000, 400),), OFFICE, cap_factor=2.0),
    KeySpec(9, _ACME, "dev-alice", "openai", None, 40,
            (("gpt-5", 0.4, 2500, 900), ("gpt-5-mini", 0.6, 2000, 600)), OFFICE),
    KeySpec(10, _ACME, "dev-carol", "anthropic", None, 30,
            (("claude-sonnet-4-5", 0.9, 4000, 900), ("claude-opus-4-1", 0.1, 4000, 900)),
            OFFICE, cap_factor=2.5),
    # Bob's workspace: evenings and weekends
    KeySpec(11, _BOB, "bob-playground", "openai", None, 25,
            (("gpt-5-mini", 0.6, 1500, 500), ("gpt-4o-mini", 0.4, 1200, 300)), EVENING,
            cap_factor=2.0),
    KeySpec(12, _BOB, "bob-claude", "anthropic", "research-assistant", 20,
            (("claude-sonnet-4", 1.0, 5000, 1000),), EVENING),
    KeySpec(13, _BOB, "bob-gemini", "google", None, 10,
            (("gemini-2.5-flash", 1.0, 3000, 700),), EVENING),
    # Globex Corporation: a large European company
    KeySpec(14, _GLOBEX, "care-frontline", "openai", "customer-care", 1100,
            (("gpt-4o-mini", 0.8, 2000, 400), ("gpt-4.1", 0.2, 2500, 500)), ALWAYS,
            cap_factor=2.5),
    KeySpec(15, _GLOBEX, "care-escalations", "anthropic", "customer-care", 200,
            (("claude-sonnet-4-5", 1.0, 6000, 900),), ALWAYS),
    KeySpec(16, _GLOBEX, "pipeline-enrich", "google", "data-pipeline", 700,
            (("gemini-2.5-flash", 0.6, 2500, 300), ("gemini-2.5-flash-lite", 0.4, 1500, 200)),
            NIGHTLY),
    KeySpec(17, _GLOBEX, "pipeline-embeddings", "openai", "data-pipeline", 600,
            (("text-embedding-3-small", 1.0, 700, 0),), NIGHTLY),
    # A weekly job on the Batch API; one day a script loops on the live endpoint instead.
    KeySpec(18, _GLOBEX, "nightly-batch", "openai", "data-pipeline", 300,
            (("gpt-4.1-mini", 1.0, 2500, 500),), WEEKLY_JOB,
            cap_factor=400.0, unscaled=True, batch_discount=True),
    KeySpec(19, _GLOBEX, "translator-eu", "mistral", "translator", 300,
            (("mistral-medium-latest", 0.6, 1800, 1600), ("mistral-small-latest", 0.4, 1200, 1000)),
            OFFICE),
    KeySpec(20, _GLOBEX, "fraud-screen", "openai", "fraud-screener", 250,
            (("o4-mini", 0.6, 1500, 1200), ("gpt-4.1-nano", 0.4, 1000, 100)), ALWAYS,
            cap_factor=3.0),
    KeySpec(21, _GLOBEX, "meeting-notes", "google", "meeting-notes", 150,
            (("gemini-2.5-pro", 1.0, 9000, 1200),), OFFICE),
    KeySpec(22, _GLOBEX, "hr-helpdesk", "mistral", "hr-helpdesk", 60,
            (("mistral-small-latest", 1.0, 1500, 400),), OFFICE, cap_factor=2.0),
    # One key for every provider: the analysts' SQL copilot routes by task.
    KeySpec(23, _GLOBEX, "analytics-sql", None, None, 120,
            (("claude-sonnet-4", 0.5, 5000, 800), ("gpt-4.1", 0.3, 4000, 700),
             ("gemini-2.5-pro", 0.2, 5000, 900)), OFFICE),
    KeySpec(24, _GLOBEX, "globex-sandbox", "openai", None, 50,
            (("gpt-5-nano", 0.7, 1500, 600), ("gpt-5", 0.3, 2000, 800)), OFFICE, cap_factor=2.0),
    KeySpec(25, _GLOBEX, "codegen-mistral", "mistral", None, 90,
            (("codestral-latest", 1.0, 3000, 500),), OFFICE),
    # The support bot's voice: text to speech only, kept apart from its LLM key's cap.
    KeySpec(26, _ACME, "support-voice", "openai", "support-bot", 0, (), ALWAYS,
            cap_cents=10_000),
)
# fmt: on
KEY_BY_NAME: Final = {k.name: k for k in KEYS}

# Token counts spread lognormally around a key's typical ones; the cap sizing assumes the same.
TOKEN_SIGMA: Final = 0.5
