"""Development tokens: Clerk-v2-shaped session tokens signed by a local key.

Outside production and without `CLERK_JWT_KEY`, the app verifies tokens against the public half
of `.crabglamp/dev-jwt-key.pem` (created on first use under the working directory), with the dev
issuer and authorized parties below: the very checks of `crabglamp.api.auth` that Clerk tokens pass.
Nothing here runs in production: the key, `crabglamp token` and `/dev/sign-in` all refuse.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crabglamp.settings import Settings

DEV_ISSUER: Final = "https://dev.crabglamp.local"
DEV_AUTHORIZED_PARTIES: Final = ("http://127.0.0.1:8000", "http://localhost:8000")
# Extra origins (comma-separated) the dev server accepts as `azp`; `crabglamp serve` sets it to
# the address it listens on.
DEV_ORIGINS_ENV: Final = "CRABGLAMP_DEV_ORIGINS"
DEV_KEY_RELATIVE_PATH: Final = Path(".crabglamp") / "dev-jwt-key.pem"
DEFAULT_TTL_SECONDS: Final = 3600
# What a token's subject may be: `crabglamp token --user` and `/dev/sign-in?user=` check it.
USER_ID: Final = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


class DevTokensRefused(RuntimeError):
    """Development tokens were asked for under production settings."""


def _refuse_in_production(settings: Settings) -> None:
    if settings.production:
        raise DevTokensRefused(
            "development tokens are disabled in production settings (CRABGLAMP_PRODUCTION); "
            "sign in through Clerk"
        )


# Key -------------------------------------------------------------------------------------------

_keys: dict[Path, rsa.RSAPrivateKey] = {}


def dev_key_path() -> Path:
    return Path.cwd() / DEV_KEY_RELATIVE_PATH


def load_dev_key(settings: Settings) -> rsa.RSAPrivateKey:
    """The local signing key, created (mode 0600) on first use; refused in production."""
    _refuse_in_production(settings)
    path = dev_key_path().resolve()
    cached = _keys.get(path)
    if cached is not None:
        return cached
    if not path.exists():
        _create_key(path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise DevTokensRefused(f"{path} does not hold an RSA private key; delete it to start over")
    _keys[path] = loaded
    return loaded


def _create_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# local development secrets of crabglamp\n*\n")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Write aside, then link into place: link fails if another process won the race, and nobody
    # ever reads a half-written key.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def dev_public_pem(settings: Settings) -> str:
    public = load_dev_key(settings).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def dev_authorized_parties(settings: Settings) -> tuple[str, ...]:
    extra = [part.strip() for part in os.environ.get(DEV_ORIGINS_ENV, "").split(",")]
    return _unique([*DEV_AUTHORIZED_PARTIES, *extra, *settings.clerk_authorized_parties])


def serve_origins(host: str, port: int) -> tuple[str, ...]:
    """Origins a browser uses for a server listening on host:port."""
    local = {"", "0.0.0.0", "::", "127.0.0.1", "localhost"}
    names = ["127.0.0.1", "localhost"] if host in local else [host]
    return tuple(f"http://{f'[{name}]' if ':' in name else name}:{port}" for name in names)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def dev_settings(settings: Settings) -> Settings:
    """Settings whose Clerk configuration is the dev key's, unless Clerk is configured (or this
    is production, where nothing changes and the dev key is never touched)."""
    if settings.production or settings.clerk_jwt_key:
        return settings
    return replace(
        settings,
        clerk_jwt_key=dev_public_pem(settings),
        clerk_issuer=DEV_ISSUER,
        clerk_authorized_parties=dev_authorized_parties(settings),
    )


def is_dev_auth(settings: Settings) -> bool:
    return not settings.production and settings.clerk_issuer == DEV_ISSUER


# Tokens ----------------------------------------------------------------------------------------


def sign_session_token(
    private_key: rsa.RSAPrivateKey,
    *,
    issuer: str,
    azp: str | None,
    user_id: str,
    org_id: str | None = None,
    org_role: str | None = None,
    admin: bool = False,
    ttl: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A token shaped like a Clerk v2 session token, signed RS256 by `private_key`."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user_id,
        "sid": f"sess_dev_{secrets.token_hex(8)}",
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "iss": issuer,
        "v": 2,
        "sts": "active",
    }
    if azp is not None:
        claims["azp"] = azp
    if org_id is not None:
        slug = org_id.removeprefix("org_").replace("_", "-")
        claims["o"] = {"id": org_id, "rol": org_role or "member", "slg": slug}
    if admin:
        claims["metadata"] = {"role": "admin"}
    claims.update(extra_claims or {})
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": "crabglamp-dev"})


def mint_dev_token(
    user_id: str,
    org_id: str | None = None,
    org_role: str | None = None,
    admin: bool = False,
    ttl: int = DEFAULT_TTL_SECONDS,
    *,
    azp: str | None = None,
    settings: Settings | None = None,
) -> str:
    """A dev session token that the app verifies like a Clerk one; refused in production."""
    settings = settings or Settings.from_env()
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    if not user_id:
        raise ValueError("user_id must not be empty")
    return sign_session_token(
        load_dev_key(settings),
        issuer=DEV_ISSUER,
        azp=azp or DEV_AUTHORIZED_PARTIES[0],
        user_id=user_id,
        org_id=org_id,
        org_role=org_role,
        admin=admin,
        ttl=ttl,
    )
