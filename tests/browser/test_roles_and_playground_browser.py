"""The playground offline, roles on the page, a platform admin's first view and the messages
for addresses the page cannot use. None of this depends on the date: today's clock only."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from browser_support import LAPTOP, PHONE, LiveServer, new_context, screenshot, sign_in
from playwright.sync_api import Browser, Page, Route, expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("live_server", [None], indirect=True, ids=["today"]),
]

LOOPBACK = re.compile(r"^(https?|wss?)://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/")
SECURITY = ("content-security-policy", "x-content-type-options", "referrer-policy")
GLOBEX = "ce0fbc2e-865e-592b-9ac7-4d016110da14"  # the demo's Globex account (not Alice's)


def wait_until_drawn(page: Page) -> None:
    for section in ("keys", "llm", "compute", "voice", "invoice"):
        page.wait_for_selector(f"#{section}:is([data-state=ready], [data-state=empty])")


def test_the_playground_works_with_every_request_off_the_machine_blocked(
    page: Page, live_server: LiveServer
) -> None:
    blocked: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        if LOOPBACK.match(url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.context.route("**/*", guard)
    sent: list[str] = []
    page.on(
        "request", lambda r: sent.append(r.post_data or "") if r.url.endswith("/graphql") else None
    )
    sign_in(page, live_server, next_path="/graphql")
    html = {"Accept": "text/html"}
    playground = page.request.get(f"{live_server.base_url}/graphql", headers=html)
    dashboard = page.request.get(f"{live_server.base_url}/dashboard/usage")
    assert "<title>GraphQL playground" in playground.text()
    for name in SECURITY:
        assert playground.headers[name] == dashboard.headers[name], name
    expect(page.locator(".graphiql-container")).to_be_visible()
    # It opens with the REST-equivalent query and the dashboard's own documents.
    for tab in ("RestUsage", "KeyCards", "LlmDailyChart", "InvoicePreview"):
        expect(page.locator(".graphiql-tab", has_text=tab).first).to_be_visible()
    # The schema arrives by introspection through the same session.
    page.get_by_role("button", name="Show Documentation Explorer").click()
    expect(page.get_by_text("Root Types")).to_be_visible()
    assert any("IntrospectionQuery" in body for body in sent)
    # The editors load after the tabs: running before the query is in its editor sends nothing.
    expect(page.locator(".graphiql-query-editor")).to_contain_text("RestUsage")
    with page.expect_response(
        lambda r: r.url.endswith("/graphql") and "RestUsage" in (r.request.post_data or "")
    ) as ran:
        page.locator(".graphiql-execute-button").click()
    assert ran.value.status == 200 and "totalCents" in ran.value.json()["data"]["usage"]["llm"]
    assert blocked == [], blocked
    screenshot(page, "playground-offline", full_page=False)


def test_a_member_sees_no_admin_buttons_and_knows_who_and_where(
    page: Page, live_server: LiveServer
) -> None:
    sign_in(page, live_server, user="user_demo_carol")
    wait_until_drawn(page)
    cards = page.locator(".key-card")
    expect(cards.first).to_be_visible()
    expect(page.locator(".key-card .key-actions")).to_have_count(0)
    expect(page.locator(".key-card").get_by_role("button")).to_have_count(0)
    expect(page.locator("#keys .member-note")).to_contain_text("only its administrators")
    expect(page.locator(".identity")).to_contain_text("user_demo_carol")
    expect(page.locator(".identity")).to_contain_text("member")
    expect(page.locator(".account-label")).to_have_text("Acme Robotics")
    # What the card's figure holds, as the schema says.
    expect(cards.first.locator(".figure-note")).to_have_text("LLM + voice through this key")
    screenshot(page, "member-view", full_page=False)
    # Signing out ends the session: the API refuses the cookie no longer held.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/dev/sign-in"))
    assert "__session" not in {c["name"] for c in page.context.cookies()}


def test_an_admin_sees_the_actions_and_the_rotate_grace_period(
    page: Page, live_server: LiveServer
) -> None:
    sign_in(page, live_server, user="user_demo_alice")
    wait_until_drawn(page)
    card = page.locator(".key-card:not(.is-revoked)").first
    expect(card.get_by_role("button", name=re.compile(r"^Rotate"))).to_be_visible()
    card.get_by_role("button", name=re.compile(r"^(Raise|Set) cap")).click()
    dialog = page.locator("#cap-dialog")
    dialog.get_by_label("New monthly cap (USD)").fill("99999999999999")
    dialog.get_by_role("button", name="Save cap").click()
    expect(dialog.get_by_role("alert")).to_have_text(
        "Enter a monthly cap between $0.00 and $10,000,000.00."
    )
    dialog.get_by_role("button", name="Cancel").click()
    card.get_by_role("button", name=re.compile(r"^Rotate")).click()
    grace = page.locator("#rotate-dialog").get_by_label("Old secret keeps working for")
    expect(grace.locator("option")).to_have_count(5)
    expect(grace).to_have_value("0")
    page.keyboard.press("Escape")


def test_a_platform_admins_first_view_is_platform_wide_with_a_picker(
    page: Page, live_server: LiveServer
) -> None:
    token = sign_in(page, live_server, user="user_demo_admin")
    expect(page).to_have_url(re.compile(r"\?admin=1$"))
    wait_until_drawn(page)
    expect(page.locator(".account-label")).to_have_text("All accounts (platform-wide)")
    picker = page.get_by_label("Account", exact=True)
    expect(picker).to_have_value("*")
    everything = live_server.rest(token, "/api/usage", admin="1")
    shown = page.locator('[data-stat="llm"] .stat-value').get_attribute("data-cents")
    assert round(float(shown or "nan") * 1e6) == round(everything["llm"]["totalCents"] * 1e6)
    assert everything["llm"]["totalCents"] > 0
    expect(page.locator("#keys")).to_contain_text("Choose an account")
    expect(page.get_by_text("Choose an account", exact=True)).to_have_count(0)
    screenshot(page, "platform-admin-first-view", full_page=False)


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("?month=2026-13", "month must be YYYY-MM (a month 01 to 12), got '2026-13'"),
        ("?range=garbage", "range must be one of this-month, last-month, last-7-days"),
        ("?from=2026-03-20&to=2026-03-05", "from (2026-03-20) is after to (2026-03-05)"),
        ("?from=2024-01-01&to=2025-06-30", "is longer than 366 days"),
    ],
)
def test_a_parameter_the_page_cannot_use_is_named(
    page: Page, live_server: LiveServer, query: str, said: str
) -> None:
    sign_in(page, live_server, next_path=f"/dashboard/usage{query}")
    wait_until_drawn(page)
    notice = page.locator(".url-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(said)
    expect(notice).to_contain_text("instead")
    # The address now says what the page shows.
    expect(page).to_have_url(re.compile(r"/dashboard/usage$"))


def test_a_month_in_the_address_is_the_month_shown(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server, next_path="/dashboard/usage?month=2026-02")
    wait_until_drawn(page)
    expect(page.locator(".period-label")).to_contain_text("February 2026")
    expect(page.locator(".url-notice")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"\?month=2026-02$"))
    # Every part asks for that month, the invoice included.
    expect(page.locator("#invoice")).to_contain_text("February 2026")
    expect(page.get_by_label("Period", exact=True)).to_have_value("month")


@pytest.mark.parametrize(
    ("account", "title"),
    [(GLOBEX, "You cannot see this account"), ("not-an-id", "No such account")],
)
def test_an_account_one_cannot_see_is_one_clear_message(
    page: Page, live_server: LiveServer, account: str, title: str
) -> None:
    sign_in(page, live_server, next_path=f"/dashboard/usage?account={quote(account)}")
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.get_by_text("Could not load this part of the page")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(1)


def test_filtered_export_names_its_filter(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server, next_path="/dashboard/usage?provider=openai")
    wait_until_drawn(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="Export CSV").click()
    assert re.fullmatch(
        r"crabglamp-usage-\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d_provider-openai\.csv",
        info.value.suggested_filename,
    )


def test_on_a_phone_every_tables_cost_column_is_on_screen(
    browser: Browser, live_server: LiveServer
) -> None:
    context = new_context(browser, live_server, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        sign_in(page, live_server)
        wait_until_drawn(page)
        edges: list[float] = page.evaluate(
            """() => [...document.querySelectorAll('main table')].flatMap((t) =>
                [...t.querySelectorAll('tr')].map((r) => r.lastElementChild.getBoundingClientRect().right))"""
        )
        assert edges, "the page has tables"
        assert max(edges) <= PHONE["width"], f"a cost column ends at {max(edges)}px"
    finally:
        context.close()


def test_the_new_secret_is_never_cut_off(browser: Browser, live_server: LiveServer) -> None:
    context = new_context(browser, live_server, viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, live_server)
        wait_until_drawn(page)
        page.locator(".key-card:not(.is-revoked)").first.get_by_role(
            "button", name=re.compile(r"^Rotate")
        ).click()
        page.locator("#rotate-dialog").get_by_role("button", name="Rotate key").click()
        field = page.locator("#new-secret")
        expect(field).to_be_visible()
        overflow = field.evaluate("(el) => el.scrollWidth - el.clientWidth")
        assert overflow <= 0, f"the secret is cut by {overflow}px"
    finally:
        context.close()


assert LAPTOP  # the default viewport of the `page` fixture (conftest)


def test_a_key_with_less_left_than_a_typical_request_says_its_cap_is_reached(
    page: Page, live_server: LiveServer
) -> None:
    token = sign_in(page, live_server)
    wait_until_drawn(page)
    answer = live_server.graphql(
        token,
        "{ virtualKeys { id status accruedCents } usage { llm { keys { keyId totalCents requestCount } } } }",
    )
    busy = {k["keyId"]: k for k in answer["usage"]["llm"]["keys"] if k["requestCount"] > 0}
    key = next(k for k in answer["virtualKeys"] if k["status"] == "active" and k["id"] in busy)
    typical = busy[key["id"]]["totalCents"] / busy[key["id"]]["requestCount"]
    cap = round(key["accruedCents"] + typical / 2, 6)  # under 100 %, less than a request left
    live_server.graphql(
        token,
        "mutation($k: ID!, $c: Float) { setSpendCap(keyId: $k, spendCapCents: $c) { __typename } }",
        {"k": key["id"], "c": cap},
    )
    page.reload()
    wait_until_drawn(page)
    card = page.locator(f'.key-card[data-key-id="{key["id"]}"]')
    expect(card).to_have_class(re.compile(r"\blevel-over\b"))
    expect(card.locator(".level-word")).to_have_text("Cap reached")
    # The proxy's own words (proxy/refusals.py cap_refusal).
    expect(card.locator(".cap-reached")).to_contain_text("monthly spend cap of $")
    expect(card.locator(".cap-reached")).to_contain_text("is reached")
