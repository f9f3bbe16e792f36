"""No cross-site writes with the session cookie (CONTRACTS.md §7.3).

A browser attaches the `__session` cookie to any request for our host, also one that a page of
another origin sends: a plain HTML form (`application/x-www-form-urlencoded`, `text/plain`) or
`fetch(…, {mode: "no-cors"})`. SameSite=Lax does not help against a sibling subdomain or another
port of the same site, which count as the same site. So a state-changing request that is
authenticated by the cookie (and not by an `Authorization` header, which no other origin can set
without CORS, and we allow none) must

1. come from one of our origins: its `Origin` header is the origin it was sent to (the request's
   own scheme, host and port) or one of the configured public origins (`CLERK_AUTHORIZED_PARTIES`,
   the origins Clerk issues our session tokens for); without an `Origin` header, the browser's
   `Sec-Fetch-Site: same-origin` stands in for it; and
2. carry a JSON (or JSON Lines) content type, which no form and no `no-cors` fetch can send.

Bearer-token clients are not browsers' ambient credentials: the rule does not apply to them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request

from crabglamp.api.auth import SESSION_COOKIE

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
JSON_MEDIA_TYPES: Final = frozenset({"application/json"})


@dataclass(frozen=True, slots=True)
class CrossSiteRefusal:
    """Why a cookie-authenticated write is refused: 403 (origin) or 415 (content type)."""

    status: int
    code: str
    message: str


def media_type(request: Request) -> str:
    """The request's media type, without parameters, lower case ("" when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def by_cookie(request: Request) -> bool:
    """Authenticated by the session cookie: no Authorization header (it wins), and the cookie."""
    return "authorization" not in request.headers and bool(request.cookies.get(SESSION_COOKIE))


def normalise_origin(origin: str) -> str | None:
    """scheme://host[:port] in lower case, the default port left out; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.path not in {"", "/"}:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def own_origin(request: Request) -> str | None:
    """The origin the request was sent to: its scheme (after trusted proxy headers) and Host."""
    return normalise_origin(f"{request.url.scheme}://{request.url.netloc}")


def allowed_origins(request: Request, public_origins: Iterable[str]) -> set[str]:
    allowed = {found for found in map(normalise_origin, public_origins) if found is not None}
    own = own_origin(request)
    if own is not None:
        allowed.add(own)
    return allowed


def cookie_write_refusal(
    request: Request, public_origins: Iterable[str], accepted: Collection[str]
) -> CrossSiteRefusal | None:
    """None when the request may go on: not authenticated by the cookie, or same-origin with an
    accepted (JSON) content type. Only headers are read: nothing of the body."""
    if not by_cookie(request):
        return None
    origin = request.headers.get("origin")
    if origin is None:
        same_origin = request.headers.get("sec-fetch-site", "").strip().lower() == "same-origin"
    else:
        found = normalise_origin(origin)
        same_origin = found is not None and found in allowed_origins(request, public_origins)
    if not same_origin:
        return CrossSiteRefusal(
            403,
            "cross_site_request",
            "a request signed in by the __session cookie must come from the dashboard's own "
            "origin (Origin, or Sec-Fetch-Site: same-origin); other clients send the session "
            "token as 'Authorization: Bearer'",
        )
    if media_type(request) not in accepted:
        return CrossSiteRefusal(
            415,
            "unsupported_media_type",
            "a request signed in by the __session cookie must be sent as "
            + " or ".join(sorted(accepted)),
        )
    return None
