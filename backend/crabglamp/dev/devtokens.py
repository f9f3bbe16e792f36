"""Development sign-in: Clerk-v2-shaped session tokens signed by a local key.

Outside production and without `CLERK_JWT_KEY`, the app verifies tokens against the public half
of `.crabglamp/dev-jwt-key.pem` (created on first use under the working directory), with the dev
issuer and authorized parties below: the very checks of `crabglamp.api.auth` that Clerk tokens pass.
Nothing here runs in production: the key, `crabglamp token` and `/dev/sign-in` all refuse.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import importlib
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from crabglamp.api.auth import SESSION_COOKIE, error_response
from crabglamp.settings import Settings

DEV_ISSUER: Final = "https://dev.crabglamp.local"
DEV_AUTHORIZED_PARTIES: Final = ("http://127.0.0.1:8000", "http://localhost:8000")
# Extra origins (comma-separated) the dev server accepts as `azp`; `crabglamp serve` sets it to
# the address it listens on.
DEV_ORIGINS_ENV: Final = "CRABGLAMP_DEV_ORIGINS"
DEV_KEY_RELATIVE_PATH: Final = Path(".crabglamp") / "dev-jwt-key.pem"
DEFAULT_TTL_SECONDS: Final = 3600
# Dev sessions are not refreshed by a Clerk frontend, so the cookie's token lives a working day.
SIGN_IN_TTL_SECONDS: Final = 12 * 3600
DEFAULT_NEXT: Final = "/dashboard/usage"
_USER_ID: Final = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


class DevTokensRefused(RuntimeError):
    """Development tokens were asked for under production settings."""


@dataclass(frozen=True, slots=True)
class DevUser:
    user_id: str
    name: str
    org_id: str | None = None
    org_role: str | None = None
    is_platform_admin: bool = False


# The demo's people (crabglamp.dev.demo seeds their accounts); used when that module is absent.
FALLBACK_DEMO_USERS: Final = (
    DevUser("user_demo_alice", "Alice — admin of Acme", "org_demo_acme", "admin"),
    DevUser("user_demo_carol", "Carol — member of Acme", "org_demo_acme", "member"),
    DevUser("user_demo_bob", "Bob — personal account"),
    DevUser("user_demo_dave", "Dave — admin of Globex", "org_demo_globex", "admin"),
    DevUser("user_demo_admin", "Platform admin", is_platform_admin=True),
)


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


def token_command(settings: Settings, args: argparse.Namespace) -> int:
    """`crabglamp token`: print one dev token on stdout; exit 2 on refusal or bad arguments."""
    if settings.production:
        print(
            "crabglamp token: refused: production settings (CRABGLAMP_PRODUCTION) never sign "
            "development tokens",
            file=sys.stderr,
        )
        return 2
    problem = None
    if args.ttl <= 0:
        problem = "--ttl must be a positive number of seconds"
    elif args.role and not args.org:
        problem = "--role needs --org"
    elif not _USER_ID.fullmatch(args.user):
        problem = "--user must be a user id (letters, digits, _ and -)"
    if problem:
        print(f"crabglamp token: {problem}", file=sys.stderr)
        return 2
    if settings.clerk_jwt_key:
        print(
            "crabglamp token: warning: CLERK_JWT_KEY is set, so the server verifies Clerk tokens "
            "and will refuse this development token",
            file=sys.stderr,
        )
    print(
        mint_dev_token(
            args.user,
            org_id=args.org,
            org_role=args.role,
            admin=args.admin,
            ttl=args.ttl,
            azp=args.azp,
            settings=settings,
        )
    )
    return 0


# Demo users ------------------------------------------------------------------------------------


def _field(item: object, *names: str) -> Any:
    for name in names:
        value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
        if value is not None:
            return value
    return None


def _as_dev_user(item: object, default_id: object = None) -> DevUser | None:
    user_id = _field(item, "user_id", "clerk_user_id", "id") or default_id
    if not isinstance(user_id, str) or not user_id:
        return None
    org_id = _field(item, "org_id", "clerk_org_id")
    org_role = _field(item, "org_role", "role")
    name = _field(item, "name", "display_name", "label") or user_id
    admin = bool(_field(item, "is_platform_admin", "platform_admin", "admin"))
    return DevUser(
        user_id=user_id,
        name=str(name),
        org_id=org_id if isinstance(org_id, str) else None,
        org_role=org_role if isinstance(org_role, str) and org_id else None,
        is_platform_admin=admin,
    )


def demo_users() -> tuple[DevUser, ...]:
    """crabglamp.dev.demo's users when that module provides them, else the fallback list."""
    try:
        # Imported by name: the demo module is optional and may not define its users.
        found: object = getattr(importlib.import_module("crabglamp.dev.demo"), "DEMO_USERS", None)
    except ImportError:
        return FALLBACK_DEMO_USERS
    if not isinstance(found, Iterable) or isinstance(found, str):
        return FALLBACK_DEMO_USERS
    # A list of users, or a mapping from user id to user; each a mapping or an object.
    items: Iterable[tuple[Any, object]] = (
        found.items() if isinstance(found, Mapping) else ((None, item) for item in found)
    )
    users = tuple(user for key, item in items if (user := _as_dev_user(item, key)) is not None)
    return users or FALLBACK_DEMO_USERS


# /dev/sign-in ----------------------------------------------------------------------------------


def _safe_next(raw: str | None) -> str | None:
    """A path on this site, or None: no scheme, no host, no `//` or backslash tricks."""
    if raw is None or raw == "":
        return DEFAULT_NEXT
    if "\\" in raw or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        return None
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not raw.startswith("/") or raw.startswith("//"):
        return None
    return raw


def _app_settings(request: Request) -> Settings | None:
    # Services are built in the app's lifespan; without them we know nothing and refuse.
    found = getattr(request.app.state, "services", None)
    authenticator = getattr(found, "authenticator", None)
    settings = getattr(authenticator, "settings", None)
    return settings if isinstance(settings, Settings) else None


async def sign_in(request: Request) -> Response:
    settings = _app_settings(request)
    if settings is None or settings.production:
        return error_response(404, "not_found", "no such page")
    if not is_dev_auth(settings):
        return error_response(
            409,
            "dev_sign_in_disabled",
            "CLERK_JWT_KEY is set, so this server verifies Clerk tokens only; sign in through Clerk",
        )
    next_path = _safe_next(request.query_params.get("next"))
    if next_path is None:
        return error_response(
            400, "invalid_parameter", "next must be a relative path on this site, like /dashboard"
        )
    user_id = request.query_params.get("user")
    users = demo_users()
    if not user_id:
        return HTMLResponse(_sign_in_page(users, next_path))
    if not _USER_ID.fullmatch(user_id):
        return error_response(
            400, "invalid_parameter", "user must be a user id (letters, digits, _ and -)"
        )
    known = {user.user_id: user for user in users}.get(user_id) or DevUser(user_id, user_id)
    parties = settings.clerk_authorized_parties
    origin = f"{request.url.scheme}://{request.url.netloc}"
    token = sign_session_token(
        load_dev_key(settings),
        issuer=DEV_ISSUER,
        # Name the origin the browser is on when the server accepts it, else a dev origin that
        # it accepts (e.g. a test client's http://testserver).
        azp=origin if origin in parties else parties[0],
        user_id=known.user_id,
        org_id=known.org_id,
        org_role=known.org_role,
        admin=known.is_platform_admin,
        ttl=SIGN_IN_TTL_SECONDS,
    )
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SIGN_IN_TTL_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def _sign_in_page(users: Iterable[DevUser], next_path: str) -> str:
    rows = []
    for user in users:
        if user.is_platform_admin:
            what = "platform admin"
        elif user.org_id:
            what = f"{user.org_role or 'member'} of {user.org_id}"
        else:
            what = "personal account"
        href = f"/dev/sign-in?user={quote(user.user_id)}&next={quote(next_path)}"
        rows.append(
            f'<li><a href="{html.escape(href)}">{html.escape(user.name)}</a> '
            f"<code>{html.escape(user.user_id)}</code> — {html.escape(what)}</li>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Development sign-in — CrabGlamp Usage</title></head><body>"
        "<h1>Development sign-in</h1>"
        "<p>Choose a demo user. The session cookie holds a token signed by the local development "
        "key and verified like a Clerk session token. Not available in production.</p>"
        f"<ul>{''.join(rows)}</ul></body></html>"
    )


def dev_routes() -> list[BaseRoute]:
    return [Route("/dev/sign-in", sign_in, methods=["GET"], name="dev_sign_in")]
