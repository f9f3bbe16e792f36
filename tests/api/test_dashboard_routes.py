from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from graphql import GraphQLInputObjectType, GraphQLObjectType, build_schema
from starlette.applications import Starlette
from starlette.testclient import TestClient

from crabglamp.api.dashboard import DOCS, DOCS_DIR, dashboard_routes, playground_response
from crabglamp.app import create_app
from crabglamp.settings import Settings

REPO = Path(__file__).resolve().parents[2]
INDEX = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Usage</title>'
    '<script type="module" src="/dashboard/assets/index-abc123.js"></script></head>'
    '<body><div id="app"></div></body></html>'
)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "index-abc123.js").write_text("console.log('dashboard');" * 100)
    (root / "favicon.svg").write_text("<svg/>")
    (root / "playground.html").write_text(INDEX.replace("index-abc123", "playground-abc123"))
    return root


def _client(dist: Path, settings: Settings | None = None) -> TestClient:
    app = Starlette(routes=dashboard_routes(settings or Settings(), dist=dist))
    return TestClient(app, follow_redirects=False)


def _config(page: str) -> dict[str, object]:
    found = re.search(r'<script id="crabglamp-config" type="application/json">(.*?)</script>', page)
    assert found, "the page embeds its configuration"
    config: dict[str, object] = json.loads(found.group(1))
    return config


def test_the_site_root_and_dashboard_lead_to_the_usage_page() -> None:
    # The real application: these routes sit beside the API's without shadowing it.
    client = TestClient(create_app(Settings()), follow_redirects=False)
    for path in ("/", "/dashboard", "/dashboard/"):
        response = client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/dashboard/usage"


def test_the_usage_page_and_its_client_routes_serve_the_app(dist: Path) -> None:
    client = _client(dist)
    for path in ("/dashboard/usage", "/dashboard/usage/", "/dashboard/usage/log/2026-11-03"):
        response = client.get(path, params={"range": "last-7-days", "provider": "openai"})
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        # The HTML names the current build's assets: it must be revalidated on every load.
        assert response.headers["cache-control"] == "no-cache"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert '<script type="module" src="/dashboard/assets/index-abc123.js">' in response.text
    config = _config(client.get("/dashboard/usage").text)
    assert config == {
        "auth": "development",
        "signInUrl": "/dev/sign-in",
        "clerkPublishableKey": None,
    }
    assert client.get("/dashboard/elsewhere").status_code == 404


SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")


def test_the_playground_and_the_docs_send_the_dashboards_security_headers(dist: Path) -> None:
    client = _client(dist)
    dashboard = client.get("/dashboard/usage").headers
    csp = dashboard["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert dashboard["x-content-type-options"] == "nosniff"
    assert dashboard["referrer-policy"] == "same-origin"
    playground = playground_response(Settings(), dist)
    assert playground.status_code == 200
    assert b"playground-abc123.js" in playground.body
    # The playground gets the page's configuration (how to sign in) like the dashboard.
    assert _config(playground.body.decode()) == _config(client.get("/dashboard/usage").text)
    pages = {
        "playground": playground.headers,
        **{
            path: client.get(path).headers
            for path in ("/docs", "/docs/monitor-usage", "/docs/monitor-usage.md", "/docs/nope")
        },
    }
    for page, headers in pages.items():
        for name in SECURITY_HEADERS:
            assert headers[name] == dashboard[name], (page, name)


def test_hashed_assets_are_cached_for_a_year_and_compressed(dist: Path) -> None:
    client = _client(dist)
    response = client.get("/dashboard/assets/index-abc123.js", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-encoding"] == "gzip"
    assert response.text.startswith("console.log('dashboard');")
    missing = client.get("/dashboard/assets/index-old.js")
    assert missing.status_code == 404
    assert "immutable" not in missing.headers.get("cache-control", "")
    icon = client.get("/dashboard/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["cache-control"] == "public, max-age=3600"
    assert client.get("/dashboard/index.html").status_code == 404
    assert client.get("/dashboard/..%2Fsecrets").status_code == 404


def test_an_unbuilt_dashboard_says_how_to_build_it(tmp_path: Path) -> None:
    response = _client(tmp_path / "nothing-here").get("/dashboard/usage")
    assert response.status_code == 503
    assert "./just frontend" in response.text


def test_a_clerk_deployment_loads_clerks_browser_sdk(dist: Path) -> None:
    frontend_api = "clerk.usage.example.com"
    key = "pk_live_" + base64.b64encode(f"{frontend_api}$".encode()).decode().rstrip("=")
    settings = Settings(
        production=True,
        clerk_jwt_key="PEM",
        clerk_issuer=f"https://{frontend_api}",
        clerk_publishable_key=key,
    )
    response = _client(dist, settings).get("/dashboard/usage")
    assert _config(response.text) == {
        "auth": "clerk",
        "signInUrl": None,
        "clerkPublishableKey": key,
    }
    assert (
        f'src="https://{frontend_api}/npm/@clerk/clerk-js@5/dist/clerk.browser.js"' in response.text
    )
    assert (
        f"script-src 'self' https://{frontend_api}" in response.headers["content-security-policy"]
    )

    settings = replace(settings, clerk_publishable_key="pk_live_not-base64!")
    response = _client(dist, settings).get("/dashboard/usage")
    assert "clerk.browser.js" not in response.text
    assert _config(response.text)["clerkPublishableKey"] is None


def test_every_guide_has_a_page_and_a_markdown_twin(dist: Path) -> None:
    client = _client(dist)
    index = client.get("/docs")
    assert index.status_code == 200
    for doc in DOCS:
        source = (DOCS_DIR / f"{doc.slug}.md").read_text(encoding="utf-8")
        assert source.startswith(f"# {doc.title}\n"), doc.slug
        assert f'href="/docs/{doc.slug}"' in index.text

        page = client.get(f"/docs/{doc.slug}")
        assert page.status_code == 200
        assert f"<h1>{doc.title}</h1>" in page.text
        assert f'<a href="/docs/{doc.slug}.md" type="text/plain">View as Markdown</a>' in page.text

        markdown = client.get(f"/docs/{doc.slug}.md")
        assert markdown.status_code == 200
        assert markdown.headers["content-type"] == "text/plain; charset=utf-8"
        assert markdown.text == source
    assert client.get("/docs/no-such-guide").status_code == 404
    assert client.get("/docs/no-such-guide.md").status_code == 404


def test_links_between_guides_point_at_guides_that_exist() -> None:
    slugs = {doc.slug for doc in DOCS}
    for doc in DOCS:
        text = (DOCS_DIR / f"{doc.slug}.md").read_text(encoding="utf-8")
        for target in re.findall(r"\]\(/docs/([^)#]+)\)", text):
            assert target.removesuffix(".md") in slugs, f"{doc.slug} links to /docs/{target}"


def test_the_api_reference_names_every_root_field_and_filter() -> None:
    schema = build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))
    reference = (DOCS_DIR / "api-reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Za-z]+)", reference)) | set(
        re.findall(r"\b([a-z][A-Za-z]+)\b", reference)
    )
    names: list[str] = []
    for root in (schema.query_type, schema.mutation_type):
        if isinstance(root, GraphQLObjectType):
            names += list(root.fields)
    usage_filter = schema.get_type("UsageFilter")
    assert isinstance(usage_filter, GraphQLInputObjectType)
    names += list(usage_filter.fields)
    missing = sorted(name for name in names if name not in documented)
    assert not missing, f"api-reference.md does not mention {missing}"


def test_the_monitor_usage_guide_names_the_periods_the_page_offers() -> None:
    state = (REPO / "frontend" / "src" / "state.ts").read_text(encoding="utf-8")
    labels = re.findall(r'\{ value: "[a-z0-9-]+", label: "([^"]+)" \}', state)
    assert len(labels) == 4
    guide = (DOCS_DIR / "monitor-usage.md").read_text(encoding="utf-8")
    for label in labels:
        assert f"*{label}*" in guide
