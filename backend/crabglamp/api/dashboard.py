"""The dashboard single-page app (`/dashboard/usage`), the GraphQL playground's page, and the
customer docs (`/docs/...`).

The SPA and the playground are built by `just frontend` into frontend/dist (or shipped in the
package as crabglamp/static/dashboard); this module only serves them. Hashed assets are cached
for a year, the HTML never, so a deployment is visible on the next page load. Docs are the
Markdown files in crabglamp/docs, rendered to HTML, each with a plain-text "View as Markdown"
twin. Every page sends the same security headers (`security_headers`).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from markdown_it import MarkdownIt
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from crabglamp.api.auth import SESSION_COOKIE
from crabglamp.settings import Settings

DASHBOARD_PATH: Final = "/dashboard/usage"
# The package root (crabglamp/), which ships the built dashboard and the guides.
_PACKAGE_DIR: Final = Path(__file__).resolve().parents[1]
_REPO_DIST: Final = _PACKAGE_DIR.parents[1] / "frontend" / "dist"
_PACKAGED_DIST: Final = _PACKAGE_DIR / "static" / "dashboard"
DOCS_DIR: Final = _PACKAGE_DIR / "docs"
# Vite names every asset by its content hash: a changed file is a new URL, so cache for good.
_IMMUTABLE: Final = "public, max-age=31536000, immutable"
_REVALIDATE: Final = "no-cache"


@dataclass(frozen=True, slots=True)
class Doc:
    slug: str
    title: str
    summary: str


# The guides in reading order; each is crabglamp/docs/<slug>.md and starts with "# <title>".
DOCS: Final = (
    Doc("monitor-usage", "Monitor usage", "Read the dashboard: keys, daily spend, drill-down."),
    Doc("rotate-a-virtual-key", "Rotate a virtual key", "Replace a leaked or old secret."),
    Doc("raise-a-spend-cap", "Raise a spend cap", "Give a key more room this month."),
    Doc(
        "how-requests-are-priced",
        "How requests are priced",
        "Cached, cache-write, reasoning and audio tokens, tiers, rounding.",
    ),
    Doc(
        "anomalies-and-alerts",
        "Anomalies and alerts",
        "What is detected, and webhooks that tell you.",
    ),
    Doc("api-reference", "API reference", "GET /api/usage, GraphQL and the errors they return."),
)
_DOCS_BY_SLUG: Final = {doc.slug: doc for doc in DOCS}


def find_dist() -> Path:
    """Where the built SPA is: the repository's build first (editable installs, `just`), else
    the copy shipped in the package."""
    if (_REPO_DIST / "index.html").exists() or not (_PACKAGED_DIST / "index.html").exists():
        return _REPO_DIST
    return _PACKAGED_DIST


# Dashboard ------------------------------------------------------------------------------------


class _HashedAssets(StaticFiles):
    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = _IMMUTABLE
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 404:
            response.headers["Cache-Control"] = _REVALIDATE
        return response


def _clerk_frontend_api(publishable_key: str) -> str | None:
    """The host of Clerk's frontend API, which the publishable key encodes as base64("host$")."""
    for prefix in ("pk_live_", "pk_test_"):
        if publishable_key.startswith(prefix):
            encoded = publishable_key[len(prefix) :]
            try:
                decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            host = decoded.removesuffix("$")
            if host and all(c.isalnum() or c in ".-" for c in host):
                return host
    return None


@dataclass(frozen=True, slots=True)
class _PageConfig:
    """What the SPA needs to know about this deployment, embedded in its HTML."""

    auth: str  # "development" (local tokens, /dev/sign-in) or "clerk"
    sign_in_url: str | None
    clerk_publishable_key: str | None
    clerk_frontend_api: str | None

    def as_json(self) -> str:
        raw = json.dumps(
            {
                "auth": self.auth,
                "signInUrl": self.sign_in_url,
                "clerkPublishableKey": self.clerk_publishable_key,
            }
        )
        # Inside <script> a "</" would end the element; JSON allows the escaped form.
        return raw.replace("</", "<\\/")


def _page_config(settings: Settings) -> _PageConfig:
    if not settings.production and not settings.clerk_jwt_key:
        return _PageConfig("development", "/dev/sign-in", None, None)
    key = settings.clerk_publishable_key
    frontend_api = _clerk_frontend_api(key) if key else None
    return _PageConfig("clerk", None, key if frontend_api else None, frontend_api)


def _content_security_policy(config: _PageConfig) -> str:
    clerk = f" https://{config.clerk_frontend_api}" if config.clerk_frontend_api else ""
    return (
        "default-src 'self'; "
        f"script-src 'self'{clerk}; "
        f"connect-src 'self'{clerk}; "
        f"frame-src 'self'{clerk}; "
        f"img-src 'self' data:{' https://img.clerk.com' if clerk else ''}; "
        # Chart.js and the playground's editor size and colour their elements with inline styles.
        "style-src 'self' 'unsafe-inline'; "
        # GraphiQL's stylesheet carries its fonts inline, as data: URLs.
        "font-src 'self' data:; "
        # The playground's editor runs its language services in workers of our own origin.
        "worker-src 'self'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    )


def security_headers(settings: Settings) -> dict[str, str]:
    """What every page of ours sends (the dashboard, the playground, the docs): one CSP that
    forbids framing and foreign scripts, no content sniffing, no referrer to other sites."""
    return {
        "Content-Security-Policy": _content_security_policy(_page_config(settings)),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }


def _page_html(dist: Path, config: _PageConfig, name: str = "index.html") -> str | None:
    try:
        page = (dist / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    head = f'<script id="crabglamp-config" type="application/json">{config.as_json()}</script>'
    if config.clerk_publishable_key and config.clerk_frontend_api:
        head += (
            f'<script async crossorigin="anonymous" '
            f'data-clerk-publishable-key="{html.escape(config.clerk_publishable_key)}" '
            f'src="https://{config.clerk_frontend_api}/npm/@clerk/clerk-js@5/dist/clerk.browser.js">'
            "</script>"
        )
    return page.replace("</head>", f"{head}</head>", 1)


PLAYGROUND_PAGE: Final = "playground.html"

_NOT_BUILT: Final = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Dashboard not built</title>"
    "</head><body><h1>The dashboard is not built yet</h1><p>Run <code>./just frontend</code> "
    "(the <code>demo</code>, <code>serve</code> and <code>test</code> recipes do it for you), "
    "then reload this page.</p></body></html>"
)


def dashboard_routes(settings: Settings, dist: Path | None = None) -> list[BaseRoute]:
    """`/` and `/dashboard` lead to the usage page; `/dashboard/usage[/...]` is the SPA (its
    client-side routes included); `/dashboard/assets/*` are its hashed files."""
    root = dist or find_dist()
    config = _page_config(settings)
    headers = {"Cache-Control": _REVALIDATE, **security_headers(settings)}

    async def to_dashboard(_request: Request) -> Response:
        return RedirectResponse(DASHBOARD_PATH, status_code=307)

    async def spa(_request: Request) -> Response:
        page = _page_html(root, config)
        if page is None:
            return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
        return HTMLResponse(page, headers=headers)

    async def sign_out(request: Request) -> Response:
        # The session cookie is HttpOnly: only the server can take it away. Nothing to
        # authenticate (ending a session needs none), so another site gains nothing by it.
        response = Response(status_code=204, headers={"Cache-Control": "no-store"})
        response.delete_cookie(SESSION_COOKIE, path="/", secure=request.url.scheme == "https")
        return response

    async def top_level_file(request: Request) -> Response:
        # Files Vite copies from public/ (the icon); not hashed, so revalidated after an hour.
        name = request.path_params["name"]
        path = root / name
        if name.startswith(".") or name == "index.html" or not path.is_file():
            return PlainTextResponse("Not Found", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    assets = GZipMiddleware(_HashedAssets(directory=root / "assets", check_dir=False))
    return [
        Route("/", to_dashboard, methods=["GET", "HEAD"]),
        Route("/dashboard", to_dashboard, methods=["GET", "HEAD"]),
        Route("/dashboard/", to_dashboard, methods=["GET", "HEAD"]),
        Route(DASHBOARD_PATH, spa, methods=["GET", "HEAD"]),
        Route(DASHBOARD_PATH + "/{rest:path}", spa, methods=["GET", "HEAD"]),
        Route("/dashboard/sign-out", sign_out, methods=["POST"]),
        Mount("/dashboard/assets", app=assets),
        Route("/dashboard/{name}", top_level_file, methods=["GET", "HEAD"]),
        *docs_routes(settings),
    ]


def playground_response(settings: Settings, dist: Path | None = None) -> Response:
    """The GraphQL playground (GraphiQL, built into frontend/dist with the dashboard): what
    `GET /graphql` answers a browser. Same config, same headers as the dashboard's page."""
    page = _page_html(dist or find_dist(), _page_config(settings), PLAYGROUND_PAGE)
    if page is None:
        return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    return HTMLResponse(page, headers={"Cache-Control": _REVALIDATE, **security_headers(settings)})


# Docs -----------------------------------------------------------------------------------------


@cache
def _markdown() -> MarkdownIt:
    # Our own files, but raw HTML stays off all the same: the docs are text, tables and code.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def doc_markdown(slug: str) -> str | None:
    if slug not in _DOCS_BY_SLUG:
        return None
    return (DOCS_DIR / f"{slug}.md").read_text(encoding="utf-8")


_DOC_STYLE: Final = """
:root{color-scheme:light;--ink:#111827;--muted:#4b5563;--line:#e5e7eb;--accent:#4338ca;
--bg:#f8fafc;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);line-height:1.6}
a{color:var(--accent)}header{display:flex;gap:1rem;align-items:center;padding:.75rem 1.5rem;
background:#fff;border-bottom:1px solid var(--line)}header .brand{font-weight:700;color:var(--ink);
text-decoration:none}header nav{margin-left:auto;display:flex;gap:1rem}
.layout{display:grid;grid-template-columns:15rem minmax(0,48rem);gap:2rem;max-width:66rem;
margin:0 auto;padding:2rem 1.5rem}aside ul{list-style:none;margin:0;padding:0}
aside li{margin:.25rem 0}aside a{text-decoration:none;display:block;padding:.25rem .5rem;
border-radius:.375rem}aside a[aria-current=page]{background:#eef2ff;font-weight:600}
article{background:#fff;border:1px solid var(--line);border-radius:.75rem;padding:1.5rem 2rem}
article h1{margin-top:0;font-size:1.75rem}.doc-actions{display:flex;gap:1rem;
font-size:.875rem;margin-bottom:1rem}code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
font-size:.875em;background:#f1f5f9;padding:.1em .3em;border-radius:.25rem}
pre{background:#0f172a;color:#e2e8f0;padding:1rem;border-radius:.5rem;overflow-x:auto}
pre code{background:none;padding:0;color:inherit}table{border-collapse:collapse;width:100%;
font-size:.9rem;display:block;overflow-x:auto}th,td{border:1px solid var(--line);
padding:.4rem .6rem;text-align:left;vertical-align:top}th{background:#f8fafc}
@media (max-width:48rem){.layout{grid-template-columns:1fr;padding:1rem}
article{padding:1rem}aside ul{display:flex;flex-wrap:wrap;gap:.25rem}}
"""


def _doc_page(title: str, body: str, current: str | None, markdown_href: str | None) -> str:
    nav = "".join(
        f'<li><a href="/docs/{doc.slug}"'
        f"{' aria-current=page' if doc.slug == current else ''}>{html.escape(doc.title)}</a></li>"
        for doc in DOCS
    )
    actions = (
        f'<p class="doc-actions"><a href="{markdown_href}" type="text/plain">View as Markdown</a>'
        f'<a href="{DASHBOARD_PATH}">Open the dashboard</a></p>'
        if markdown_href
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} — CrabGlamp Usage docs</title>"
        '<link rel="icon" href="/dashboard/favicon.svg" type="image/svg+xml">'
        f"<style>{_DOC_STYLE}</style></head><body>"
        '<header><a class="brand" href="/docs">CrabGlamp Usage · Docs</a>'
        f'<nav aria-label="Site"><a href="{DASHBOARD_PATH}">Dashboard</a>'
        '<a href="/graphql">GraphQL</a></nav></header>'
        '<div class="layout"><aside><nav aria-label="Guides"><ul>'
        f"{nav}</ul></nav></aside><main><article>{actions}{body}</article></main></div>"
        "</body></html>"
    )


_DOC_CACHE: Final = {"Cache-Control": "public, max-age=300"}
_NO_CACHE: Final = {"Cache-Control": _REVALIDATE}


def _docs_index(headers: dict[str, str]) -> Response:
    items = "".join(
        f'<li><a href="/docs/{doc.slug}">{html.escape(doc.title)}</a> — '
        f'{html.escape(doc.summary)} (<a href="/docs/{doc.slug}.md">Markdown</a>)</li>'
        for doc in DOCS
    )
    body = (
        "<h1>CrabGlamp Usage documentation</h1><p>Guides for watching and controlling what your "
        f"agents spend, and the reference of the usage APIs.</p><ul>{items}</ul>"
    )
    return HTMLResponse(_doc_page("Documentation", body, None, None), headers=headers)


def _doc(request: Request, headers: dict[str, str]) -> Response:
    name: str = request.path_params["name"]
    as_markdown = name.endswith(".md")
    slug = name.removesuffix(".md")
    text = doc_markdown(slug)
    if text is None:
        body = '<h1>No such page</h1><p>See <a href="/docs">all guides</a>.</p>'
        page = _doc_page("Not found", body, None, None)
        return HTMLResponse(page, status_code=404, headers={**headers, **_NO_CACHE})
    if as_markdown:
        return PlainTextResponse(text, headers=headers)
    page = _doc_page(_DOCS_BY_SLUG[slug].title, _markdown().render(text), slug, f"/docs/{slug}.md")
    return HTMLResponse(page, headers=headers)


def docs_routes(settings: Settings) -> list[BaseRoute]:
    headers = {**_DOC_CACHE, **security_headers(settings)}

    async def docs_index(_request: Request) -> Response:
        return _docs_index(headers)

    async def doc(request: Request) -> Response:
        return _doc(request, headers)

    return [
        Route("/docs", docs_index, methods=["GET", "HEAD"]),
        Route("/docs/", docs_index, methods=["GET", "HEAD"]),
        Route("/docs/{name}", doc, methods=["GET", "HEAD"]),
    ]
