"""The usage dashboard in real Chromium, on demo data, checked against the API's own figures."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from browser_support import LAPTOP, PHONE, LiveServer, new_context, screenshot, sign_in
from playwright.sync_api import Browser, Page, Request, Route, expect

pytestmark = pytest.mark.browser

READY = "[data-state=ready]"

CARD_QUERY = """
query Cards($filter: UsageFilter) {
  virtualKeys { id name provider status secretPrefix spendCapCents accruedCents percentUsed }
  usage(filter: $filter) {
    llm { totalCents requestCount keys { keyId totalCents requestCount } }
    compute { totalCents }
    voice { totalCents totalCharacters }
  }
}
"""

DAILY_QUERY = """
query Daily($filter: UsageFilter) {
  usage(filter: $filter) {
    from
    to
    llm { totalCents daily { date models { model provider totalCents requestCount } } }
  }
}
"""

LOG_QUERY = """
query Log($date: Date!, $model: String, $provider: String) {
  requests(date: $date, model: $model, provider: $provider, first: 50) { requestCount totalCents }
}
"""


def micros(cents: float | str) -> int:
    """Cents as integer micro-cents: exact comparison of the page's and the API's amounts."""
    return round(float(cents) * 1_000_000)


def money(cents: float) -> str:
    rounded = (Decimal(str(cents)) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if rounded == 0 and cents > 0:
        return "<$0.01"  # never "$0.00" for an amount that is not nothing
    return f"${rounded:,}"


def open_dashboard(page: Page, server: LiveServer, query: str = "") -> str:
    token = sign_in(page, server, next_path=f"/dashboard/usage{query}")
    wait_until_drawn(page)
    return token


def wait_until_drawn(page: Page) -> None:
    for section in ("keys", "llm", "compute", "voice", "invoice"):
        page.wait_for_selector(f"#{section}:is([data-state=ready], [data-state=empty])")


def chart(page: Page, name: str = "llm") -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(
        """(name) => {
            const c = window.crabglamp.charts[name];
            return { labels: c.data.labels,
                     datasets: c.data.datasets.map((d) => ({ label: d.label, data: d.data })) };
        }""",
        name,
    )
    return found


def per_model(usage: dict[str, Any]) -> dict[tuple[str, str], list[int]]:
    """The API's daily figures as {(model, provider): [micro-cents per day]}."""
    days = usage["llm"]["daily"]
    series: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(days))
    for i, day in enumerate(days):
        for m in day["models"]:
            series[(m["model"], m["provider"])][i] += micros(m["totalCents"])
    return dict(series)


def segment_point(page: Page, dataset: int, index: int) -> dict[str, float]:
    page.locator("#llm canvas").scroll_into_view_if_needed()
    point: dict[str, float] = page.evaluate(
        """([dataset, index]) => {
            const c = window.crabglamp.charts.llm;
            const bar = c.getDatasetMeta(dataset).data[index];
            const box = c.canvas.getBoundingClientRect();
            return { x: box.left + bar.x, y: box.top + (bar.y + bar.base) / 2 };
        }""",
        [dataset, index],
    )
    return point


def level(percent_used: float | None, headroom: float | None = None, typical: float = 0) -> str:
    if percent_used is None:
        return "none"
    # Less left of the cap than a typical request costs: the proxy refuses already.
    if percent_used >= 100 or (headroom is not None and typical > 0 and headroom < typical):
        return "over"
    if percent_used >= 90:
        return "danger"
    return "warn" if percent_used >= 75 else "ok"


INVOICE_QUERY = "{ invoice { totalCents lines { axis continuousCents amountCents } } }"


def test_key_cards_and_totals_equal_the_api(page: Page, live_server: LiveServer) -> None:
    token = sign_in(page, live_server, next_path="/docs")
    # Compute accrues while an interval is open: the page's figure lies between two readings.
    compute_before = live_server.graphql(token, CARD_QUERY)["usage"]["compute"]["totalCents"]
    invoice_before = live_server.graphql(token, INVOICE_QUERY)["invoice"]
    page.goto(f"{live_server.base_url}/dashboard/usage")
    wait_until_drawn(page)
    api = live_server.graphql(token, CARD_QUERY)
    spent = {k["keyId"]: k for k in api["usage"]["llm"]["keys"]}
    keys = api["virtualKeys"]
    assert len(keys) > 5
    expect(page.locator(".key-card")).to_have_count(len(keys))
    for key in keys:
        card = page.locator(f'.key-card[data-key-id="{key["id"]}"]')
        expect(card.locator("h3")).to_have_text(key["name"])
        expect(card.locator(".badge").first).to_have_text(key["provider"] or "any provider")
        accrued = card.locator(".accrued")
        assert micros(accrued.get_attribute("data-cents") or "nan") == micros(key["accruedCents"])
        expect(accrued).to_have_text(money(key["accruedCents"]))
        cap = card.locator(".cap-amount")
        if key["spendCapCents"] is None:
            expect(cap).to_have_text("None")
        else:
            expect(cap).to_have_text(money(key["spendCapCents"]))
        if key["percentUsed"] is not None:
            shown = float(card.locator(".percent").get_attribute("data-percent") or "nan")
            assert shown == pytest.approx(key["percentUsed"], abs=1e-9)
            expect(card.get_by_role("progressbar")).to_have_accessible_name(
                f"{key['name']}: share of the monthly cap used"
            )
        period = spent.get(key["id"], {"totalCents": 0.0, "requestCount": 0})
        # Warning colours near the cap.
        headroom = (
            None if key["spendCapCents"] is None else key["spendCapCents"] - key["accruedCents"]
        )
        typical = period["totalCents"] / period["requestCount"] if period["requestCount"] else 0
        expect(card).to_have_class(
            re.compile(rf"\blevel-{level(key['percentUsed'], headroom, typical)}\b")
        )
        shown_spend = card.locator(".period-spend").get_attribute("data-cents") or "nan"
        assert micros(shown_spend) == micros(period["totalCents"])
        count = card.locator(".period-requests").get_attribute("data-count")
        assert int(count or -1) == period["requestCount"]
    assert any(level(k["percentUsed"]) in {"warn", "danger", "over"} for k in keys), (
        "the demo has a key near its cap, shown in warning colours"
    )

    usage = api["usage"]
    tiles = {
        "llm": usage["llm"]["totalCents"],
        "compute": usage["compute"]["totalCents"],
        "voice": usage["voice"]["totalCents"],
    }
    shown = {
        stat: micros(
            page.locator(f'[data-stat="{stat}"] .stat-value').get_attribute("data-cents") or "nan"
        )
        for stat in ("llm", "compute", "voice", "total")
    }
    assert shown["llm"] == micros(tiles["llm"])
    assert shown["voice"] == micros(tiles["voice"])
    assert micros(compute_before) <= shown["compute"] <= micros(tiles["compute"])
    assert shown["total"] == shown["llm"] + shown["compute"] + shown["voice"]
    expect(page.locator('[data-stat="llm"] .stat-value')).to_have_text(money(tiles["llm"]))
    # The REST endpoint tells the same story as the page.
    rest = live_server.rest(token, "/api/usage")
    assert micros(rest["llm"]["totalCents"]) == micros(tiles["llm"])

    invoice = live_server.graphql(token, INVOICE_QUERY)["invoice"]
    earlier = {line["axis"]: line["amountCents"] for line in invoice_before["lines"]}
    shown_lines = 0
    for line in invoice["lines"]:
        amount = page.locator(f'#invoice tr[data-axis="{line["axis"]}"] .amount')
        if line["axis"] != "COMPUTE":
            expect(amount).to_have_attribute("data-amount-cents", str(line["amountCents"]))
        # A running VM's line can pass a cent between the page's reading and the API's.
        cents = int(amount.get_attribute("data-amount-cents") or "-1")
        assert earlier[line["axis"]] <= cents <= line["amountCents"]
        shown_lines += cents
    total = page.locator("#invoice .total")
    assert int(total.get_attribute("data-amount-cents") or "-1") == shown_lines
    assert invoice_before["totalCents"] <= shown_lines <= invoice["totalCents"]
    screenshot(page, "dashboard-laptop")


def test_the_chart_has_a_bar_per_day_and_a_segment_per_model(
    page: Page, live_server: LiveServer
) -> None:
    token = open_dashboard(page, live_server)
    usage = live_server.graphql(token, DAILY_QUERY)["usage"]
    first, last = date.fromisoformat(usage["from"]), date.fromisoformat(usage["to"])
    days = (last - first).days + 1
    drawn = chart(page)
    assert len(drawn["labels"]) == days == len(usage["llm"]["daily"])
    expected = per_model(usage)
    models = {model for model, _ in expected}
    assert len(models) == len(expected), "the demo serves each model from one provider"
    assert {d["label"] for d in drawn["datasets"]} == models
    for dataset in drawn["datasets"]:
        (series,) = [v for (m, _), v in expected.items() if m == dataset["label"]]
        assert [micros(v) for v in dataset["data"]] == series, dataset["label"]

    # The tooltip names each model's exact amount, below the cent: hover the tallest segment
    # (a thin one may be less than a pixel high early in a month).
    biggest, day = max(
        ((d, i) for d in range(len(drawn["datasets"])) for i in range(days)),
        key=lambda at: drawn["datasets"][at[0]]["data"][at[1]],
    )
    point = segment_point(page, biggest, day)
    page.mouse.move(point["x"], point["y"] + 1)
    page.mouse.move(point["x"], point["y"])
    # Chart.js handles the move on a later animation frame.
    page.wait_for_function("() => window.crabglamp.charts.llm.tooltip.body?.length > 0")
    lines: list[str] = page.evaluate(
        "() => window.crabglamp.charts.llm.tooltip.body.flatMap((b) => b.lines)"
    )
    label = drawn["datasets"][biggest]["label"]
    cents = drawn["datasets"][biggest]["data"][day]
    exact = Decimal(micros(cents)) / Decimal(100_000_000)
    text = f"${exact.normalize():f}"
    text = text if "." in text and len(text.split(".")[1]) >= 2 else f"${exact:.2f}"
    assert any(line.strip().startswith(f"{label}: {text}") for line in lines), (lines, text)
    screenshot(page, "chart-tooltip", full_page=False)


def test_clicking_a_segment_opens_that_days_log(page: Page, live_server: LiveServer) -> None:
    token = open_dashboard(page, live_server)
    usage = live_server.graphql(token, DAILY_QUERY)["usage"]
    drawn = chart(page)
    dataset = 0
    day = max(range(len(drawn["labels"])), key=lambda i: drawn["datasets"][dataset]["data"][i])
    model = drawn["datasets"][dataset]["label"]
    when = usage["llm"]["daily"][day]["date"]
    (figures,) = [m for m in usage["llm"]["daily"][day]["models"] if m["model"] == model]

    point = segment_point(page, dataset, day)
    page.mouse.click(point["x"], point["y"])
    log = page.locator("#request-log")
    expect(log).to_have_attribute("data-state", "ready")
    expect(page).to_have_url(re.compile(rf"log={when}&model={re.escape(model)}"))
    expect(log.locator("#log-title")).to_contain_text(model)

    count = int(log.locator(".log-count").get_attribute("data-count") or -1)
    total = log.locator(".log-total").get_attribute("data-cents") or "nan"
    api = live_server.graphql(
        token, LOG_QUERY, {"date": when, "model": model, "provider": figures["provider"]}
    )["requests"]
    assert count == figures["requestCount"] == api["requestCount"]
    assert micros(total) == micros(figures["totalCents"]) == micros(api["totalCents"])
    rows = log.locator("tbody tr")
    expect(rows).to_have_count(min(50, count))
    expect(rows.first.locator("td").nth(3)).to_have_text(model)
    # Each request's tokens by kind and tier ("—" for the demo's plain requests), and the day's
    # cached input with what caching saved.
    expect(rows.first.locator("td.log-breakdown")).to_have_count(1)
    expect(log.locator(".log-cached")).to_contain_text("tokens, saved")
    screenshot(page, "request-log", full_page=False)

    if count > 50:
        log.get_by_role("button", name="Next page").click()
        expect(log.locator(".log-range")).to_contain_text("Showing 51\u201350"[:11])
        log.get_by_role("button", name="Previous page").click()
        expect(log.locator(".log-range")).to_contain_text("Showing 1\u201350")

    # The back button closes the log and restores the address.
    page.go_back()
    expect(log).not_to_be_visible()
    expect(page).not_to_have_url(re.compile("log="))
    page.go_forward()
    expect(log).to_be_visible()
    expect(log.locator(".log-count")).to_have_attribute("data-count", str(count))
    page.keyboard.press("Escape")
    expect(log).not_to_be_visible()
    expect(page).not_to_have_url(re.compile("log="))


def headline_cents(page: Page) -> int:
    return micros(page.locator("#llm .headline .figure").get_attribute("data-cents") or "nan")


def wait_for_view(page: Page, labels: int, llm_cents: float) -> None:
    page.wait_for_function(
        """([labels, micros]) => {
            const c = window.crabglamp.charts.llm;
            const figure = document.querySelector('#llm[data-state=ready] .headline .figure');
            return c && c.data.labels.length === labels && figure &&
                Math.round(Number(figure.dataset.cents) * 1e6) === micros;
        }""",
        arg=[labels, micros(llm_cents)],
    )


def test_range_and_filters_change_cards_chart_and_url(page: Page, live_server: LiveServer) -> None:
    token = open_dashboard(page, live_server)
    month = live_server.graphql(token, CARD_QUERY)
    month_days = len(chart(page)["labels"])
    all_cards = page.locator(".key-card").count()

    page.get_by_label("Period", exact=True).select_option("last-7-days")
    expect(page).to_have_url(re.compile(r"\?range=last-7-days$"))
    today = live_server.today()
    week = {"from": str(today - timedelta(days=6)), "to": str(today)}
    api = live_server.graphql(token, CARD_QUERY, {"filter": week})
    wait_for_view(page, 7, api["usage"]["llm"]["totalCents"])
    for k in api["usage"]["llm"]["keys"]:
        shown = page.locator(f'.key-card[data-key-id="{k["keyId"]}"] .period-spend')
        assert micros(shown.get_attribute("data-cents") or "nan") == micros(k["totalCents"])
    # The week is another period than the month so far, except on the 7th of a month, when
    # the two are the same days: then, and only then, the totals agree.
    same_days = week["from"] == str(today.replace(day=1))
    assert (api["usage"]["llm"]["totalCents"] == month["usage"]["llm"]["totalCents"]) == same_days

    page.locator("#provider-filter summary").click()
    page.locator("#provider-filter").get_by_role("checkbox", name="openai").check()
    expect(page).to_have_url(re.compile(r"range=last-7-days&provider=openai$"))
    openai = live_server.graphql(token, DAILY_QUERY, {"filter": {**week, "provider": "openai"}})
    wait_for_view(page, 7, openai["usage"]["llm"]["totalCents"])
    assert {d["label"] for d in chart(page)["datasets"]} == {
        m for m, _ in per_model(openai["usage"])
    }
    assert {p for _, p in per_model(openai["usage"])} == {"openai"}
    for card in page.locator(".key-card .key-head .badge:first-of-type").all_inner_texts():
        assert card in {"openai", "any provider"}
    assert page.locator(".key-card").count() < all_cards
    page.keyboard.press("Escape")

    key = next(k for k in month["virtualKeys"] if k["provider"] == "openai")
    page.locator("#key-filter summary").click()
    page.locator("#key-filter").get_by_role(
        "checkbox", name=re.compile(rf"^{re.escape(key['name'])}\b")
    ).first.check()
    expect(page).to_have_url(re.compile(rf"provider=openai&key={key['id']}$"))
    one = live_server.graphql(
        token, DAILY_QUERY, {"filter": {**week, "provider": "openai", "keyIds": [key["id"]]}}
    )
    wait_for_view(page, 7, one["usage"]["llm"]["totalCents"])
    expect(page.locator(".key-card")).to_have_count(1)
    screenshot(page, "filtered-view")

    # Back, step by step, to where we started.
    page.go_back()
    wait_for_view(page, 7, openai["usage"]["llm"]["totalCents"])
    expect(page).to_have_url(re.compile(r"range=last-7-days&provider=openai$"))
    page.go_back()
    wait_for_view(page, 7, api["usage"]["llm"]["totalCents"])
    page.go_back()
    wait_for_view(page, month_days, month["usage"]["llm"]["totalCents"])
    expect(page.locator(".key-card")).to_have_count(all_cards)
    expect(page.get_by_label("Period", exact=True)).to_have_value("this-month")


def test_a_shared_address_opens_the_same_view(page: Page, live_server: LiveServer) -> None:
    # Two weeks of the month before this one: the demo always holds it, whatever the day.
    first = (live_server.today().replace(day=1) - timedelta(days=1)).replace(day=5)
    span = {"from": str(first), "to": str(first + timedelta(days=13))}
    token = open_dashboard(
        page, live_server, f"?from={span['from']}&to={span['to']}&provider=anthropic"
    )
    api = live_server.graphql(token, DAILY_QUERY, {"filter": {**span, "provider": "anthropic"}})
    assert api["usage"]["llm"]["totalCents"] > 0, "the demo has Anthropic traffic in that span"
    wait_for_view(page, 14, api["usage"]["llm"]["totalCents"])
    expect(page.get_by_label("Period", exact=True)).to_have_value("custom")
    expect(page.locator("#range-from")).to_have_value(span["from"])
    expect(page.locator("#provider-filter summary")).to_contain_text("anthropic")


def test_a_newcomer_finds_the_three_demo_anomalies_on_the_default_view(
    browser: Browser, live_server: LiveServer
) -> None:
    # Acme (Alice) has the leaked key and the key heading for its cap; Globex (Dave) the
    # runaway script.
    for user, kinds in (
        ("user_demo_alice", ("SPIKE_ON_QUIET_KEY", "CAP_TRAJECTORY")),
        ("user_demo_dave", ("RUNAWAY_DAY",)),
    ):
        context = new_context(browser, live_server, viewport=LAPTOP)
        try:
            page = context.new_page()
            sign_in(page, live_server, user=user)
            wait_until_drawn(page)
            panel = page.locator("#anomalies")
            expect(panel).to_have_attribute("data-state", "ready")
            for kind in kinds:
                expect(panel.locator(f'.anomaly[data-kind="{kind}"]').first).to_be_visible()
            # Early in a month the leak and the runaway day may belong to the month before:
            # the panel then reaches back a week, and says so.
            since = panel.locator(".anomaly-since")
            if live_server.today().day < 7:
                expect(since).to_contain_text("The month has just begun")
            else:
                expect(since).to_have_count(0)
            if user == "user_demo_alice":
                warned = page.locator(".key-card:is(.level-warn, .level-danger, .level-over)")
                expect(warned.first).to_be_visible()
        finally:
            context.close()


def test_rotating_a_key_from_an_anomaly_shows_the_new_secret_once(
    page: Page, live_server: LiveServer
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    token = open_dashboard(page, live_server)
    expect(page.locator("#anomalies")).to_have_attribute("data-state", "ready")
    anomaly = page.locator('.anomaly[data-kind="SPIKE_ON_QUIET_KEY"]').first
    expect(anomaly).to_be_visible()
    screenshot(page, "anomalies", full_page=False)
    anomaly.get_by_role("button", name=re.compile(r"^Rotate key")).click()
    dialog = page.locator("#rotate-dialog")
    expect(dialog).to_be_visible()
    title = dialog.locator("h2").inner_text()
    name = re.search(r"“(.+)”", title)
    assert name, title
    dialog.get_by_role("button", name="Rotate key").click()

    secret_field = dialog.get_by_label("New secret")
    expect(secret_field).to_be_visible()
    secret = secret_field.input_value()
    assert len(secret) >= 24 and " " not in secret
    expect(dialog).to_contain_text("only time the secret is shown")
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.locator(".copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "rotated-secret", full_page=False)

    dialog.get_by_role("button", name="Done").click()
    expect(dialog).not_to_be_visible()
    expect(page.locator("#new-secret")).to_have_count(0)
    assert secret not in page.content(), "the secret is gone once the dialog is closed"
    keys = live_server.graphql(token, "{ virtualKeys { id name secretPrefix } }")["virtualKeys"]
    (key,) = [k for k in keys if k["name"] == name.group(1)]
    assert secret.startswith(key["secretPrefix"])
    card = page.locator(f'.key-card[data-key-id="{key["id"]}"]')
    expect(card.locator(".key-prefix")).to_have_text(f"{key['secretPrefix']}…")

    # Opening the dialog again asks for a new rotation; it never shows a secret again.
    card.get_by_role("button", name=re.compile(r"^Rotate")).click()
    expect(dialog.get_by_role("button", name="Rotate key")).to_be_visible()
    expect(dialog.get_by_label("New secret")).to_have_count(0)
    page.keyboard.press("Escape")


def test_the_docs_and_their_markdown_view_load(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.base_url}/docs/monitor-usage")
    expect(page.get_by_role("heading", level=1)).to_have_text("Monitor usage")
    screenshot(page, "docs-monitor-usage")
    page.get_by_role("link", name="View as Markdown").click()
    expect(page).to_have_url(re.compile(r"/docs/monitor-usage\.md$"))
    assert page.locator("body").inner_text().startswith("# Monitor usage")
    page.go_back()
    page.get_by_role("navigation", name="Guides").get_by_role(
        "link", name="Rotate a virtual key"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rotate a virtual key")


def test_the_phone_layout_fits_the_screen(browser: Browser, live_server: LiveServer) -> None:
    context = new_context(browser, live_server, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        open_dashboard(page, live_server)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
        width = page.locator("#llm canvas").bounding_box()
        assert width and width["width"] <= PHONE["width"]
        screenshot(page, "dashboard-phone", full_page=False)
        page.locator("#llm").scroll_into_view_if_needed()
        screenshot(page, "dashboard-phone-chart", full_page=False)
    finally:
        context.close()


def test_data_as_of_refreshes_on_its_own(page: Page, live_server: LiveServer) -> None:
    # The context's clock is installed (browser_support.new_context): it can be moved on.
    open_dashboard(page, live_server)
    stamp = page.locator(".freshness time")
    expect(stamp).to_have_text(re.compile(r"^\d\d:\d\d:\d\d UTC$"))
    before = stamp.get_attribute("datetime") or ""
    sent: list[str] = []
    page.on(
        "request", lambda r: sent.append(r.post_data or "") if r.url.endswith("/graphql") else None
    )
    page.clock.fast_forward("00:31")
    expect(stamp).not_to_have_attribute("datetime", before)
    # While live (changes are pushed: test_live_browser.py), what grows with time alone is
    # re-read on this rhythm: open compute intervals, and the invoice that counts them.
    assert any("ComputeChart" in body for body in sent)
    assert any("InvoicePreview" in body for body in sent)


def test_csv_export_holds_the_current_view(page: Page, live_server: LiveServer) -> None:
    today = live_server.today()
    span = {"from": str(today - timedelta(days=29)), "to": str(today)}
    token = sign_in(page, live_server, next_path="/docs")
    compute_before = live_server.graphql(token, CARD_QUERY, {"filter": span})["usage"]["compute"]
    page.goto(f"{live_server.base_url}/dashboard/usage?range=last-30-days")
    wait_until_drawn(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="Export CSV").click()
    download = info.value
    assert re.fullmatch(
        r"crabglamp-usage-\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.csv", download.suggested_filename
    )
    text = (download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    api = live_server.graphql(token, CARD_QUERY, {"filter": span})["usage"]
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        assert span["from"] <= row["date"][:10] <= span["to"] or row["axis"] == "key"
        sums[row["axis"]] += Decimal(row["cents"])
    for axis in ("llm", "voice"):
        assert micros(str(sums[axis])) == micros(api[axis]["totalCents"]), axis
    # Compute accrues while an interval is open: the export lies between two readings.
    compute = micros(str(sums["compute"]))
    assert micros(compute_before["totalCents"]) <= compute <= micros(api["compute"]["totalCents"])
    keys = {r["item"]: Decimal(r["cents"]) for r in rows if r["axis"] == "key"}
    assert micros(str(sum(keys.values()))) == micros(api["llm"]["totalCents"])
    assert sum(int(r["requests"]) for r in rows if r["axis"] == "llm") == api["llm"]["requestCount"]


def test_keyboard_and_accessible_names(page: Page, live_server: LiveServer) -> None:
    open_dashboard(page, live_server)
    expect(page.get_by_role("combobox", name="Period")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile(r"^Daily LLM spend by model"))).to_be_visible()
    expect(page.get_by_role("region", name="Anomalies")).to_be_visible()
    toggle = page.get_by_role("button", name="Show as table")
    toggle.focus()
    page.keyboard.press("Enter")
    cell = page.locator("#llm table button").first
    expect(cell).to_be_visible()
    cell.focus()
    page.keyboard.press("Enter")
    log = page.locator("#request-log")
    expect(log).to_have_attribute("data-state", "ready")
    page.keyboard.press("Escape")
    expect(log).not_to_be_visible()
    # The provider filter opens, checks and closes from the keyboard.
    page.locator("#provider-filter summary").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page).to_have_url(re.compile(r"provider="))
    page.keyboard.press("Escape")
    expect(page.locator("#provider-filter")).not_to_have_attribute("open", "")


def test_signed_out_visitors_are_asked_to_sign_in(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.base_url}/dashboard/usage?range=last-month")
    expect(page.get_by_role("heading", name="Sign in to see your usage")).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(
        re.compile(r"/dev/sign-in\?next=%2Fdashboard%2Fusage%3Frange%3Dlast-month")
    )


def test_a_failing_section_says_so_and_retries(page: Page, live_server: LiveServer) -> None:
    def fail_voice(route: Route, request: Request) -> None:
        if "VoiceChart" in (request.post_data or ""):
            route.fulfill(
                status=500,
                content_type="application/json",
                body='{"errors": [{"message": "boom"}]}',
            )
        else:
            route.continue_()

    page.route("**/graphql", fail_voice)
    sign_in(page, live_server)
    voice = page.locator("#voice")
    expect(voice).to_have_attribute("data-state", "error")
    expect(voice.get_by_role("alert")).to_contain_text("Could not load")
    expect(page.locator("#llm")).to_have_attribute("data-state", "ready")
    expect(page.locator(".freshness")).to_have_class(re.compile("is-stale"))
    screenshot(page, "error-state", full_page=False)
    page.unroute("**/graphql")
    voice.get_by_role("button", name="Try again").click()
    expect(voice).to_have_attribute("data-state", "ready")


def test_raising_a_cap_from_a_card(page: Page, live_server: LiveServer) -> None:
    token = open_dashboard(page, live_server)
    keys = live_server.graphql(token, CARD_QUERY)["virtualKeys"]
    key = max(
        (k for k in keys if k["status"] == "active" and k["percentUsed"] is not None),
        key=lambda k: k["percentUsed"],
    )
    new_cap = int(key["spendCapCents"] * 2)
    card = page.locator(f'.key-card[data-key-id="{key["id"]}"]')
    card.get_by_role("button", name=re.compile(r"^Raise cap")).click()
    dialog = page.locator("#cap-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(money(key["accruedCents"]))
    dialog.get_by_label("New monthly cap (USD)").fill(f"{new_cap / 100:.2f}")
    dialog.get_by_role("button", name="Save cap").click()
    expect(dialog).not_to_be_visible()
    expect(card.locator(".cap-amount")).to_have_text(money(new_cap))
    (after,) = [
        k for k in live_server.graphql(token, CARD_QUERY)["virtualKeys"] if k["id"] == key["id"]
    ]
    assert after["spendCapCents"] == new_cap
    shown = float(card.locator(".percent").get_attribute("data-percent") or "nan")
    assert shown == pytest.approx(after["percentUsed"], abs=1e-9)
    assert after["percentUsed"] < key["percentUsed"]


def test_a_platform_admin_picks_any_account(page: Page, live_server: LiveServer) -> None:
    token = sign_in(page, live_server, user="user_demo_admin")
    accounts = live_server.graphql(token, "{ accounts(admin: true) { id name } }")["accounts"]
    assert len(accounts) >= 2
    picker = page.get_by_label("Account", exact=True)
    expect(picker).to_be_visible()
    chosen = accounts[-1]
    picker.select_option(label=chosen["name"])
    expect(page).to_have_url(re.compile(rf"\?account={chosen['id']}$"))
    wait_until_drawn(page)
    keys = live_server.graphql(
        token, "query($a: ID) { virtualKeys(accountId: $a) { id } }", {"a": chosen["id"]}
    )["virtualKeys"]
    expect(page.locator(".key-card")).to_have_count(len(keys))
    expect(picker).to_have_value(chosen["id"])
