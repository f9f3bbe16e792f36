"""Clerk session token verification (CONTRACTS.md §6.1; the refusals of §7.3), each refusal on its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from typing import Any

import httpx
import jwt
import pytest
from clerk_backend_api import security as clerk_security
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request

import crabglamp.api.auth
from crabglamp.access import Caller
from crabglamp.api.auth import (
    LEEWAY_SECONDS,
    AuthConfigError,
    Authenticator,
    AuthError,
    error_response,
)
from crabglamp.settings import Settings

ISSUER = "https://clerk.crabglamp.example"
PARTY = "https://app.crabglamp.example"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = _key()
OTHER_KEY = _key()
PUBLIC_PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
SETTINGS = Settings(
    clerk_jwt_key=PUBLIC_PEM, clerk_issuer=ISSUER, clerk_authorized_parties=(PARTY,)
)


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(SETTINGS)


def claims(**changes: Any) -> dict[str, Any]:
    """A v2 session of user_alice in org_acme as admin; a change to None removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user_alice",
        "sid": "sess_1",
        "iss": ISSUER,
        "azp": PARTY,
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 60,
        "v": 2,
        "sts": "active",
        "o": {"id": "org_acme", "rol": "admin", "slg": "acme"},
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(payload: dict[str, Any], key: rsa.RSAPrivateKey = KEY) -> str:
    return jwt.encode(payload, key, algorithm="RS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWT assembled by hand, as an attacker would (PyJWT refuses to forge these)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def refused(auth: Authenticator, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        auth.verify(token)
    if token:
        assert token not in caught.value.message  # tokens are never echoed
    return caught.value


def request_with(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


# Accepted ----------------------------------------------------------------------------------------


def test_valid_token_gives_the_caller_with_its_organisation(auth: Authenticator) -> None:
    assert auth.verify(sign(claims())) == Caller(
        user_id="user_alice", org_id="org_acme", org_role="admin", is_platform_admin=False
    )


def test_valid_token_outside_an_organisation_has_no_org(auth: Authenticator) -> None:
    caller = auth.verify(sign(claims(sub="user_bob", o=None)))
    assert caller == Caller(user_id="user_bob")


def test_signed_admin_claim_makes_a_platform_admin(auth: Authenticator) -> None:
    caller = auth.verify(sign(claims(metadata={"role": "admin"}, o=None)))
    assert caller.is_platform_admin
    assert not auth.verify(sign(claims(metadata={"role": "member"}))).is_platform_admin


def test_expiry_within_the_leeway_is_tolerated(auth: Authenticator) -> None:
    now = int(time.time())
    assert auth.verify(sign(claims(exp=now - 2, nbf=now - 60, iat=now - 60))).user_id


def test_not_before_within_the_leeway_is_tolerated(auth: Authenticator) -> None:
    now = int(time.time())
    assert auth.verify(sign(claims(nbf=now + 2, iat=now))).user_id


def test_key_given_on_one_line_with_escaped_newlines_works() -> None:
    escaped = PUBLIC_PEM.strip().replace("\n", "\\n")
    settings = Settings(clerk_jwt_key=escaped, clerk_issuer=ISSUER)
    assert Authenticator(settings).verify(sign(claims())).user_id == "user_alice"


def test_without_configured_parties_any_azp_is_accepted() -> None:
    settings = Settings(clerk_jwt_key=PUBLIC_PEM, clerk_issuer=ISSUER)
    assert Authenticator(settings).verify(sign(claims(azp="https://other.example"))).user_id


# The token matrix: every one refused, with its own code ----------------------------------------


def test_expired_token_is_refused(auth: Authenticator) -> None:
    now = int(time.time())
    token = sign(claims(exp=now - LEEWAY_SECONDS - 30, nbf=now - 600, iat=now - 600))
    assert refused(auth, token).code == "token_expired"


def test_token_not_yet_valid_is_refused(auth: Authenticator) -> None:
    now = int(time.time())
    token = sign(claims(nbf=now + LEEWAY_SECONDS + 30, iat=now, exp=now + 600))
    assert refused(auth, token).code == "token_not_yet_valid"


def test_token_issued_in_the_future_is_refused(auth: Authenticator) -> None:
    now = int(time.time())
    token = sign(claims(iat=now + 600, nbf=now - 10, exp=now + 900))
    assert refused(auth, token).code == "token_not_yet_valid"


def test_token_signed_by_another_key_is_refused(auth: Authenticator) -> None:
    assert refused(auth, sign(claims(), key=OTHER_KEY)).code == "invalid_signature"


def test_alg_none_is_refused(auth: Authenticator) -> None:
    token = handmade({"alg": "none", "typ": "JWT"}, claims(), secret=None)
    assert refused(auth, token).code == "unsupported_algorithm"


def test_hs256_signed_with_the_public_key_is_refused(auth: Authenticator) -> None:
    for secret in (PUBLIC_PEM.encode(), PUBLIC_PEM.strip().encode()):
        token = handmade({"alg": "HS256", "typ": "JWT"}, claims(), secret=secret)
        assert refused(auth, token).code == "unsupported_algorithm"


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_sdk_itself_refuses_other_algorithms(
    auth: Authenticator, alg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our header check only names the reason; without it the SDK (RS256 only) still refuses.
    monkeypatch.setattr(Authenticator, "_check_shape", lambda self, token: None)
    secret = None if alg == "none" else PUBLIC_PEM.encode()
    token = handmade({"alg": alg, "typ": "JWT"}, claims(), secret=secret)
    assert refused(auth, token).code == "invalid_token"


def test_token_for_another_authorized_party_is_refused(auth: Authenticator) -> None:
    token = sign(claims(azp="https://evil.example"))
    assert refused(auth, token).code == "invalid_authorized_party"


def test_token_without_authorized_party_is_refused(auth: Authenticator) -> None:
    assert refused(auth, sign(claims(azp=None))).code == "invalid_authorized_party"


def test_token_from_another_issuer_is_refused(auth: Authenticator) -> None:
    token = sign(claims(iss="https://clerk.someone-else.example"))
    assert refused(auth, token).code == "invalid_issuer"


def test_pending_session_is_refused(auth: Authenticator) -> None:
    assert refused(auth, sign(claims(sts="pending"))).code == "session_pending"


def test_version_1_token_is_refused(auth: Authenticator) -> None:
    token = sign(claims(v=None, o=None, org_id="org_acme", org_role="org:admin"))
    assert refused(auth, token).code == "unsupported_token_version"


@pytest.mark.parametrize("missing", ["exp", "nbf", "iat", "iss", "sub"])
def test_token_missing_a_required_claim_is_refused(auth: Authenticator, missing: str) -> None:
    # PyJWT skips exp and nbf when they are absent; a token without them must not live forever.
    assert refused(auth, sign(claims(**{missing: None}))).code in {
        "invalid_token",
        "invalid_issuer",
    }


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9.not-base64!.sig",
        "x" * 20_000,
        "ak_0123456789abcdef",  # a Clerk API key is not a session token
        "mt_0123456789abcdef",  # nor an M2M token
    ],
)
def test_malformed_token_is_refused(auth: Authenticator, token: str) -> None:
    assert refused(auth, token).code == "invalid_token"


def test_malformed_organisation_claim_is_refused(auth: Authenticator) -> None:
    assert refused(auth, sign(claims(o="org_acme"))).code == "invalid_token"
    assert refused(auth, sign(claims(o={"id": 7, "rol": "admin"}))).code == "invalid_token"


def test_no_token_is_refused(auth: Authenticator) -> None:
    assert refused(auth, "").code == "unauthenticated"
    with pytest.raises(AuthError) as caught:
        auth.authenticate(request_with({}))
    assert caught.value.code == "unauthenticated"


def test_forged_admin_claim_is_refused(auth: Authenticator) -> None:
    genuine = sign(claims(o=None))
    header, _, signature = genuine.split(".")
    forged_payload = _b64(json.dumps(claims(o=None, metadata={"role": "admin"})).encode())
    assert refused(auth, f"{header}.{forged_payload}.{signature}").code == "invalid_signature"
    unsigned = handmade({"alg": "none"}, claims(metadata={"role": "admin"}), secret=None)
    assert refused(auth, unsigned).code == "unsupported_algorithm"
    foreign = sign(claims(metadata={"role": "admin"}), key=OTHER_KEY)
    assert refused(auth, foreign).code == "invalid_signature"


# Where the token comes from ---------------------------------------------------------------------


def test_token_is_read_from_the_bearer_header(auth: Authenticator) -> None:
    request = request_with({"Authorization": f"Bearer {sign(claims())}"})
    assert auth.authenticate(request).user_id == "user_alice"


def test_token_is_read_from_the_session_cookie(auth: Authenticator) -> None:
    request = request_with({"Cookie": f"theme=dark; __session={sign(claims(sub='user_bob'))}"})
    assert auth.authenticate(request).user_id == "user_bob"


def test_bearer_header_wins_over_the_cookie(auth: Authenticator) -> None:
    request = request_with(
        {
            "Authorization": f"Bearer {sign(claims())}",
            "Cookie": f"__session={sign(claims(sub='user_bob'))}",
        }
    )
    assert auth.authenticate(request).user_id == "user_alice"


def test_bad_token_in_the_cookie_is_refused(auth: Authenticator) -> None:
    request = request_with({"Cookie": f"__session={sign(claims(), key=OTHER_KEY)}"})
    with pytest.raises(AuthError) as caught:
        auth.authenticate(request)
    assert caught.value.code == "invalid_signature"


def test_other_authorization_schemes_are_refused(auth: Authenticator) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer   "):
        with pytest.raises(AuthError) as caught:
            auth.authenticate(request_with({"Authorization": value}))
        assert caught.value.code == "invalid_token"


# Networkless ---------------------------------------------------------------------------------


def test_verification_calls_the_sdk_and_never_the_network(
    auth: Authenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    def no_network(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise AssertionError("verification tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(httpx.Client, "send", no_network)
    monkeypatch.setattr(httpx.AsyncClient, "send", no_network)
    sdk_calls: list[object] = []
    real = clerk_security.authenticate_request

    def counting(request: Any, options: Any) -> Any:
        sdk_calls.append(options)
        assert options.jwt_key and options.secret_key is None
        return real(request, options)

    monkeypatch.setattr(crabglamp.api.auth, "authenticate_request", counting)

    assert auth.verify(sign(claims())).user_id == "user_alice"
    assert refused(auth, sign(claims(), key=OTHER_KEY)).code == "invalid_signature"
    assert refused(auth, sign(claims(azp="https://evil.example"))).code.startswith("invalid")
    # Machine tokens make the SDK call Clerk's API when allowed; we tell it to accept session
    # tokens only, which it checks before anything else (shown here without our shape check).
    monkeypatch.setattr(Authenticator, "_check_shape", lambda self, token: None)
    for machine in ("ak_secret", "oat_secret", "m2m_secret", "mt_secret"):
        assert refused(auth, machine).code == "invalid_token"
    assert len(sdk_calls) == 7
    assert attempts == []


# Configuration and the error body -----------------------------------------------------------


def test_key_without_issuer_is_a_configuration_error() -> None:
    with pytest.raises(AuthConfigError, match="CLERK_ISSUER"):
        Authenticator(Settings(clerk_jwt_key=PUBLIC_PEM))


def test_key_that_is_not_a_pem_public_key_is_a_configuration_error() -> None:
    with pytest.raises(AuthConfigError, match="CLERK_JWT_KEY"):
        Authenticator(Settings(clerk_jwt_key="sk_test_123", clerk_issuer=ISSUER))


def test_without_a_key_every_token_is_refused() -> None:
    unconfigured = Authenticator(Settings(production=True))
    assert not unconfigured.configured
    assert refused(unconfigured, sign(claims())).code == "auth_not_configured"


def test_error_response_is_the_canonical_body() -> None:
    response = error_response(401, "token_expired", "the session token has expired")
    assert response.status_code == 401
    assert json.loads(bytes(response.body)) == {
        "error": {"code": "token_expired", "message": "the session token has expired"}
    }
    assert response.headers["www-authenticate"] == "Bearer"
    assert "www-authenticate" not in error_response(403, "forbidden", "no").headers
