"""Settings read from the environment, once, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SQLITE_PATH = Path("crabglamp.db")


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    # Production turns off GraphiQL, introspection and the demo's local tokens.
    production: bool = False
    clerk_jwt_key: str | None = None
    clerk_issuer: str | None = None
    clerk_authorized_parties: tuple[str, ...] = field(default_factory=tuple)
    upstream_config: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=normalise_database_url(
                os.environ.get("DATABASE_URL") or f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
            ),
            production=_bool("CRABGLAMP_PRODUCTION", False),
            clerk_jwt_key=os.environ.get("CLERK_JWT_KEY") or None,
            clerk_issuer=os.environ.get("CLERK_ISSUER") or None,
            clerk_authorized_parties=_list("CLERK_AUTHORIZED_PARTIES"),
            upstream_config=os.environ.get("CRABGLAMP_UPSTREAM_CONFIG") or None,
        )


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
