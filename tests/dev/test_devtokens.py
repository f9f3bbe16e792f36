"""Development tokens: signed by a local key, verified by the same path as Clerk's (CONTRACTS.md §6)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.testclient import TestClient

from crabglamp.access import Caller
from crabglamp.api.auth import Authenticator, AuthError
from crabglamp.app import create_app
from crabglamp.cli import main
from crabglamp.dev.demo.specs import DEMO_USERS, DemoUser
from crabglamp.dev.devtokens import signing
from crabglamp.dev.devtokens.routes import dev_routes
from crabglamp.dev.devtokens.signing import (
    DEV_AUTHORIZED_PARTIES,
    DEV_ISSUER,
    DEV_ORIGINS_ENV,
    DevTokensRefused,
    dev_key_path,
    dev_settings,
    mint_dev_token,
)
from crabglamp.settings import Settings

DEV = Settings()
PRODUCTION = Settings(production=True)


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own working directory, hence its own dev key, and a clean env."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "CRABGLAMP_PRODUCTION",
        "CLERK_JWT_KEY",
        "CLERK_ISSUER",
        "CLERK_AUTHORIZED_PARTIES",
        DEV_ORIGINS_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path


def dev_authenticator() -> Authenticator:
    return Authenticator(dev_settings(DEV))


def test_dev_token_verifies_through_the_authenticator() -> None:
    token = mint_dev_token("user_demo_alice", "org_demo_acme", "admin", settings=DEV)
    assert dev_authenticator().verify(token) == Caller(
        user_id="user_demo_alice", org_id="org_demo_acme", org_role="admin"
    )
    admin = dev_authenticator().verify(mint_dev_token("user_demo_admin", admin=True, settings=DEV))
    assert admin == Caller(user_id="user_demo_admin", is_platform_admin=True)


def test_dev_token_is_shaped_like_a_clerk_v2_session_token() -> None:
    token = mint_dev_token("user_demo_carol", "org_demo_acme", settings=DEV, ttl=120)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert claims["v"] == 2
    assert claims["iss"] == DEV_ISSUER
    assert claims["azp"] == DEV_AUTHORIZED_PARTIES[0]
    assert claims["o"] == {"id": "org_demo_acme", "rol": "member", "slg": "demo-acme"}
    assert claims["sid"].startswith("sess_")
    assert claims["exp"] - claims["iat"] == 120
    assert "metadata" not in claims


def test_dev_settings_use_the_dev_key_and_parties() -> None:
    settings = dev_settings(DEV)
    assert settings.clerk_issuer == DEV_ISSUER
    assert set(DEV_AUTHORIZED_PARTIES) <= set(settings.clerk_authorized_parties)
    assert settings.clerk_jwt_key is not None
    assert "BEGIN PUBLIC KEY" in settings.clerk_jwt_key


def test_key_file_is_private_created_once_and_ignored_by_git(workdir: Path) -> None:
    first = mint_dev_token("user_demo_bob", settings=DEV)
    path = workdir / ".crabglamp" / "dev-jwt-key.pem"
    assert dev_key_path() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (workdir / ".crabglamp" / ".gitignore").read_text().splitlines()[-1] == "*"
    content = path.read_bytes()
    signing._keys.clear()  # as a second process would: read the file again
    second = mint_dev_token("user_demo_bob", settings=DEV)
    assert path.read_bytes() == content
    assert dev_authenticator().verify(first) == dev_authenticator().verify(second)


def test_dev_token_is_refused_once_the_key_changes(workdir: Path) -> None:
    token = mint_dev_token("user_demo_bob", settings=DEV)
    (workdir / ".crabglamp" / "dev-jwt-key.pem").unlink()
    signing._keys.clear()
    with pytest.raises(AuthError) as caught:
        dev_authenticator().verify(token)
    assert caught.value.code == "invalid_signature"


def test_dev_token_for_an_unknown_origin_is_refused() -> None:
    token = mint_dev_token("user_demo_bob", settings=DEV, azp="http://evil.example:8000")
    with pytest.raises(AuthError) as caught:
        dev_authenticator().verify(token)
    assert caught.value.code == "invalid_authorized_party"


def test_origin_the_server_was_started_on_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEV_ORIGINS_ENV, ",".join(signing.serve_origins("0.0.0.0", 9123)))
    token = mint_dev_token("user_demo_bob", settings=DEV, azp="http://localhost:9123")
    assert dev_authenticator().verify(token).user_id == "user_demo_bob"


def test_expired_dev_token_is_refused() -> None:
    key = signing.load_dev_key(DEV)
    token = signing.sign_session_token(
        key,
        issuer=DEV_ISSUER,
        azp=DEV_AUTHORIZED_PARTIES[0],
        user_id="user_demo_bob",
        ttl=60,
        now=time.time() - 3600,
    )
    with pytest.raises(AuthError) as caught:
        dev_authenticator().verify(token)
    assert caught.value.code == "token_expired"


def test_production_refuses_dev_tokens_and_never_creates_a_key(workdir: Path) -> None:
    with pytest.raises(DevTokensRefused, match="production"):
        mint_dev_token("user_demo_bob", settings=PRODUCTION)
    with pytest.raises(DevTokensRefused):
        signing.load_dev_key(PRODUCTION)
    assert dev_settings(PRODUCTION) is PRODUCTION
    assert not (workdir / ".crabglamp").exists()


def test_configured_clerk_key_is_kept_in_development() -> None:
    public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    clerk = Settings(clerk_jwt_key=public, clerk_issuer="https://clerk.example")
    assert dev_settings(clerk) is clerk
    dev_token = mint_dev_token("user_demo_bob", settings=DEV)
    with pytest.raises(AuthError):
        Authenticator(dev_settings(clerk)).verify(dev_token)


# crabglamp token ----------------------------------------------------------------------------


def test_token_command_prints_a_token_that_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["token", "--user", "user_demo_dave", "--org", "org_demo_globex", "--role", "admin"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert dev_authenticator().verify(out.strip()) == Caller(
        user_id="user_demo_dave", org_id="org_demo_globex", org_role="admin"
    )


def test_token_command_signs_platform_admins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "user_demo_admin", "--admin", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    assert dev_authenticator().verify(token).is_platform_admin
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    "argv",
    [
        ["--user", "user_demo_bob", "--role", "admin"],
        ["--user", "user_demo_bob", "--ttl", "0"],
        ["--user", "not a user id"],
    ],
)
def test_token_command_rejects_bad_arguments(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("crabglamp token: ")


def test_token_command_refuses_in_production(workdir: Path) -> None:
    # The real command, as a user runs it.
    env = {**os.environ, "CRABGLAMP_PRODUCTION": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "crabglamp.cli", "token", "--user", "user_demo_bob"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "refused" in done.stderr and "production" in done.stderr
    assert not (workdir / ".crabglamp").exists()


# /dev/sign-in --------------------------------------------------------------------------------


@pytest.fixture
def dev_client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url)), follow_redirects=False) as client:
        yield client


def _authenticator(client: TestClient) -> Authenticator:
    app = client.app
    assert isinstance(app, Starlette)
    found: Authenticator = app.state.services.authenticator
    return found


def test_sign_in_page_lists_the_demo_users(dev_client: TestClient) -> None:
    page = dev_client.get("/dev/sign-in")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for user in ("user_demo_alice", "user_demo_bob", "user_demo_carol", "user_demo_admin"):
        assert f"/dev/sign-in?user={user}&amp;next=/dashboard/usage" in page.text


def test_sign_in_sets_the_session_cookie_and_redirects(dev_client: TestClient) -> None:
    response = dev_client.get("/dev/sign-in", params={"user": "user_demo_alice"})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/usage"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    token = response.cookies["__session"]
    assert _authenticator(dev_client).verify(token) == Caller(
        user_id="user_demo_alice", org_id="org_demo_acme", org_role="admin"
    )


def test_sign_in_as_platform_admin_and_keep_a_relative_next(dev_client: TestClient) -> None:
    response = dev_client.get(
        "/dev/sign-in", params={"user": "user_demo_admin", "next": "/dashboard/usage?month=2026-11"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/usage?month=2026-11"
    caller = _authenticator(dev_client).verify(response.cookies["__session"])
    assert caller == Caller(user_id="user_demo_admin", is_platform_admin=True)


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/dashboard",
        "//evil.example/dashboard",
        "/\\evil.example",
        "javascript:alert(1)",
        "dashboard/usage",
    ],
)
def test_sign_in_rejects_a_next_that_leaves_the_site(dev_client: TestClient, next_url: str) -> None:
    response = dev_client.get("/dev/sign-in", params={"user": "user_demo_bob", "next": next_url})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"
    assert "set-cookie" not in response.headers


def test_sign_in_is_not_found_in_production(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url, production=True))
    with TestClient(app, follow_redirects=False) as client:
        response = client.get("/dev/sign-in", params={"user": "user_demo_admin"})
    assert response.status_code == 404
    assert "set-cookie" not in response.headers


def test_sign_in_route_refuses_production_even_if_mounted() -> None:
    # Defence in depth: the handler checks the settings itself.
    app = Starlette(routes=dev_routes())
    app.state.services = SimpleNamespace(authenticator=SimpleNamespace(settings=PRODUCTION))
    with TestClient(app, follow_redirects=False) as client:
        response = client.get("/dev/sign-in", params={"user": "user_demo_admin"})
    assert response.status_code == 404
    assert "set-cookie" not in response.headers


def test_sign_in_is_off_when_clerk_is_configured(db_url: str) -> None:
    public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = Settings(
        database_url=db_url, clerk_jwt_key=public, clerk_issuer="https://clerk.example"
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        response = client.get("/dev/sign-in", params={"user": "user_demo_bob"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "dev_sign_in_disabled"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("user", DEMO_USERS, ids=lambda u: u.user_id)
def test_every_demo_user_is_offered_and_signs_in_with_their_claims(user: DemoUser) -> None:
    app = Starlette(routes=dev_routes())
    app.state.services = SimpleNamespace(authenticator=dev_authenticator())
    with TestClient(app, follow_redirects=False) as client:
        assert user.display_name in client.get("/dev/sign-in").text
        response = client.get("/dev/sign-in", params={"user": user.user_id})
    assert dev_authenticator().verify(response.cookies["__session"]) == Caller(
        user_id=user.user_id,
        org_id=user.org_id,
        org_role=user.org_role,
        is_platform_admin=user.is_platform_admin,
    )
