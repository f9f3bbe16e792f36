"""`/dev/sign-in`: the chooser page, or a session cookie for the chosen user and a redirect."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from crabglamp.api.auth import SESSION_COOKIE, error_response
from crabglamp.dev.devtokens.page import sign_in_page
from crabglamp.dev.devtokens.signing import (
    DEV_ISSUER,
    USER_ID,
    is_dev_auth,
    load_dev_key,
    sign_session_token,
)
from crabglamp.dev.devtokens.users import DevUser, demo_users
from crabglamp.settings import Settings

# Dev sessions are not refreshed by a Clerk frontend, so the cookie's token lives a working day.
SIGN_IN_TTL_SECONDS: Final = 12 * 3600
DEFAULT_NEXT: Final = "/dashboard/usage"


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
        return HTMLResponse(sign_in_page(users, next_path))
    if not USER_ID.fullmatch(user_id):
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


def dev_routes() -> list[BaseRoute]:
    return [Route("/dev/sign-in", sign_in, methods=["GET"], name="dev_sign_in")]
