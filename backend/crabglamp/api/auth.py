"""Who is calling: Clerk session tokens (v2) verified networklessly (CONTRACTS.md §6).

Clerk's own SDK (`clerk-backend-api`) checks the RS256 signature against `CLERK_JWT_KEY`, the
expiry, not-before and the authorized party. It checks neither the issuer nor the session status,
and it skips expiry and not-before when a token simply omits them, so `Authenticator` adds those
checks on top. Development tokens (crabglamp.dev.devtokens) go through exactly this path.

Tokens are never logged and never echoed in an error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
from clerk_backend_api.security import authenticate_request
from clerk_backend_api.security.types import (
    AuthenticateRequestOptions,
    AuthErrorReason,
    TokenVerificationErrorReason,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from crabglamp.access import Caller
from crabglamp.settings import Settings

logger = logging.getLogger(__name__)

SESSION_COOKIE: Final = "__session"
# Clock difference tolerated between Clerk and us for exp, nbf and iat.
LEEWAY_SECONDS: Final = 5
# A Clerk session token is about 1 KiB; anything far larger is not one, and not worth parsing.
MAX_TOKEN_LENGTH: Final = 16 * 1024
_ALGORITHM: Final = "RS256"
_REQUIRED_CLAIMS: Final = ("sub", "iss", "exp", "nbf", "iat")


class AuthError(Exception):
    """The request carries no acceptable session token (HTTP 401)."""

    status = 401

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"AuthError(code={self.code!r}, message={self.message!r})"


class AuthConfigError(ValueError):
    """CLERK_* settings that cannot verify anything; raised at start-up, not per request."""


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The one error body of the product: {"error": {"code": ..., "message": ...}}."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def auth_error_response(error: AuthError) -> JSONResponse:
    return error_response(error.status, error.code, error.message)


@dataclass(frozen=True, slots=True)
class _BearerOnly:
    """The SDK reads a token from any object with `headers`; give it exactly the one we chose."""

    headers: Mapping[str, str]


# What the SDK's refusal reasons mean to our callers.
_SDK_CODES: Final[dict[Any, tuple[str, str]]] = {
    TokenVerificationErrorReason.TOKEN_EXPIRED: ("token_expired", "the session token has expired"),
    TokenVerificationErrorReason.TOKEN_NOT_ACTIVE_YET: (
        "token_not_yet_valid",
        "the session token is not valid yet (nbf is in the future)",
    ),
    TokenVerificationErrorReason.TOKEN_IAT_IN_THE_FUTURE: (
        "token_not_yet_valid",
        "the session token was issued in the future (iat)",
    ),
    TokenVerificationErrorReason.TOKEN_INVALID_SIGNATURE: (
        "invalid_signature",
        "the session token is not signed by the configured Clerk key",
    ),
    TokenVerificationErrorReason.TOKEN_INVALID_AUTHORIZED_PARTIES: (
        "invalid_authorized_party",
        "the session token was issued for another authorized party (azp)",
    ),
    AuthErrorReason.SESSION_TOKEN_MISSING: ("unauthenticated", "no session token was sent"),
    AuthErrorReason.TOKEN_TYPE_NOT_SUPPORTED: (
        "invalid_token",
        "only Clerk session tokens are accepted",
    ),
}


def _load_public_key(raw: str) -> str:
    # Environment files often carry the PEM on one line with literal "\n" escapes.
    pem = raw.replace("\\n", "\n").strip()
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise AuthConfigError(
            "CLERK_JWT_KEY is not a PEM public key (copy the PEM from Clerk's API keys page)"
        ) from exc
    if not isinstance(key, RSAPublicKey):
        raise AuthConfigError("CLERK_JWT_KEY must be an RSA public key (Clerk signs with RS256)")
    return pem


class Authenticator:
    """Turns a session token into a `Caller`, or refuses it with an `AuthError`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._issuer = settings.clerk_issuer
        self._parties = tuple(settings.clerk_authorized_parties)
        self._jwt_key: str | None = None
        if settings.clerk_jwt_key:
            if not settings.clerk_issuer:
                # The SDK never checks `iss`; without an issuer we could not either.
                raise AuthConfigError("CLERK_ISSUER is required when CLERK_JWT_KEY is set")
            self._jwt_key = _load_public_key(settings.clerk_jwt_key)
        else:
            logger.warning("CLERK_JWT_KEY is not set: every authenticated request will be refused")

    @property
    def configured(self) -> bool:
        return self._jwt_key is not None

    @property
    def public_origins(self) -> tuple[str, ...]:
        """The origins our session tokens are issued for (azp): where the dashboard is served."""
        return self._parties

    def authenticate(self, request: HTTPConnection) -> Caller:
        """The caller of a request: `Authorization: Bearer` first, else the `__session` cookie."""
        return self.verify(presented_token(request))

    def verify(self, token: str) -> Caller:
        if not token:
            raise AuthError("unauthenticated", "no session token was sent")
        if self._jwt_key is None:
            raise AuthError(
                "auth_not_configured", "the server has no CLERK_JWT_KEY to verify session tokens"
            )
        self._check_shape(token)
        options = AuthenticateRequestOptions(
            # jwt_key only: with a secret_key the SDK would fetch keys over the network.
            jwt_key=self._jwt_key,
            authorized_parties=list(self._parties) if self._parties else None,
            clock_skew_in_ms=LEEWAY_SECONDS * 1000,
            # Machine tokens (ak_, m2m_, ...) would be sent to Clerk's API for verification.
            accepts_token=["session_token"],
        )
        try:
            state = authenticate_request(_BearerOnly({"Authorization": f"Bearer {token}"}), options)
        except Exception as exc:
            # The SDK trusts the shape of signed claims (e.g. `o` must be an object); a token
            # it trips over is a refusal, not a server error.
            raise AuthError("invalid_token", "the session token's claims are malformed") from exc
        if not state.is_signed_in or state.payload is None:
            code, message = _SDK_CODES.get(
                state.reason, ("invalid_token", "the session token could not be verified")
            )
            raise AuthError(code, message)
        return self._caller(state.payload)

    def _check_shape(self, token: str) -> None:
        """Refuse what is not even a JWS before the SDK, so the error says why."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("invalid_token", "the session token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError("invalid_token", "the session token is not a well-formed JWT") from exc
        # PyJWT refuses other algorithms too (the SDK pins RS256); this only names the reason.
        if header.get("alg") != _ALGORITHM:
            raise AuthError("unsupported_algorithm", "session tokens must be signed with RS256")

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        # From here on the signature is verified: the claims are Clerk's (or our dev key's).
        missing = [name for name in _REQUIRED_CLAIMS if claims.get(name) is None]
        if missing:
            raise AuthError(
                "invalid_token", f"the session token lacks the claim(s) {', '.join(missing)}"
            )
        if claims.get("v") != 2:
            raise AuthError(
                "unsupported_token_version",
                "only Clerk session tokens version 2 are accepted (claim v=2)",
            )
        if claims["iss"] != self._issuer:
            raise AuthError(
                "invalid_issuer", "the session token was issued by another Clerk instance (iss)"
            )
        if self._parties and claims.get("azp") not in self._parties:
            raise AuthError(
                "invalid_authorized_party",
                "the session token was issued for another authorized party (azp)",
            )
        now = time.time()
        exp, nbf = claims["exp"], claims["nbf"]
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
            raise AuthError("invalid_token", "exp and nbf must be numbers")
        if exp <= now - LEEWAY_SECONDS:
            raise AuthError("token_expired", "the session token has expired")
        if nbf > now + LEEWAY_SECONDS:
            raise AuthError(
                "token_not_yet_valid", "the session token is not valid yet (nbf is in the future)"
            )
        # Clerk v2 marks sessions with unfinished tasks (e.g. choosing an organisation) "pending";
        # they are not signed in yet.
        status = claims.get("sts")
        if status is not None and status != "active":
            raise AuthError(
                "session_pending", "the session is not active yet (finish signing in first)"
            )
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise AuthError("invalid_token", "the session token's sub must be a user id")
        org_id, org_role = _organisation(claims.get("o"))
        metadata = claims.get("metadata")
        is_admin = isinstance(metadata, Mapping) and metadata.get("role") == "admin"
        return Caller(user_id=sub, org_id=org_id, org_role=org_role, is_platform_admin=is_admin)


def presented_token(request: HTTPConnection) -> str:
    """The session token of a request (or a WebSocket's upgrade): `Authorization: Bearer`
    first, else the `__session` cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(
                "invalid_token", "the Authorization header must be 'Bearer <session token>'"
            )
        return token.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie
    raise AuthError(
        "unauthenticated",
        "sign in: send a Clerk session token as 'Authorization: Bearer' or the __session cookie",
    )


def expires_at(token: str) -> float:
    """The `exp` of a token that `Authenticator.verify` accepted (so its claims are signed)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise AuthError("invalid_token", "exp and nbf must be numbers")
    return float(exp)


def _organisation(claim: object) -> tuple[str | None, str | None]:
    """`o` of a v2 token: {"id": "org_…", "rol": "admin", "slg": "acme"}, absent outside an org."""
    if claim is None:
        return None, None
    if not isinstance(claim, Mapping):
        raise AuthError("invalid_token", "the session token's o claim must be an object")
    org_id, role = claim.get("id"), claim.get("rol")
    if org_id is None:
        return None, None
    if not isinstance(org_id, str) or not org_id or not (role is None or isinstance(role, str)):
        raise AuthError("invalid_token", "the session token's o.id and o.rol must be strings")
    return org_id, role
