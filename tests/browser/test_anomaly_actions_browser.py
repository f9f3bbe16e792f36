"""Anomalies you can act on, in real Chromium on the demo: each kind offers the actions its own
suggestion names; each shows the key's figures at detection and now; acting changes its state
(resolved ones stay, drawn apart); a member sees no admin action; a key whose leak policy is
"suspend" is suspended within seconds of a spike, and resumed from the anomaly."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from browser_support import LAPTOP, LiveServer, new_context, screenshot, sign_in
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

ANOMALIES = """
query A($from: Date, $to: Date) {
  anomalies(from: $from, to: $to) {
    id kind keyId agentId date state viewerMayAct
    atDetection { accruedCents spendCapCents percentUsed }
    key { id name status accruedCents spendCapCents percentUsed leakPolicy }
  }
}
"""


def money(cents: float) -> str:
    rounded = (Decimal(str(cents)) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${rounded:,}"


def _window(server: LiveServer) -> dict[str, str]:
    # The page's default view reaches back a week early in a month; the planted runaway day is
    # a few days old: ask for the last ten days.
    today = server.today()
    return {"from": (today - timedelta(days=10)).isoformat(), "to": today.isoformat()}


def _api(server: LiveServer, token: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.graphql(token, ANOMALIES, _window(server))["anomalies"]
    return found


def _open(page: Page, server: LiveServer, user: str = "user_demo_alice") -> str:
    window = _window(server)
    token = sign_in(
        page,
        server,
        user=user,
        next_path=f"/dashboard/usage?from={window['from']}&to={window['to']}",
    )
    expect(page.locator("#anomalies")).to_have_attribute("data-state", "ready")
    page.wait_for_selector("#keys[data-state=ready]")
    return token


def _item(page: Page, anomaly: dict[str, Any]) -> Any:
    return page.locator(f'.anomaly[data-anomaly-id="{anomaly["id"]}"]')


def _actions(item: Any) -> list[str]:
    names: list[str] = item.locator(".anomaly-actions button").evaluate_all(
        "(bs) => bs.map((b) => b.dataset.action)"
    )
    return names


def test_each_kind_offers_the_actions_its_suggestion_names(
    page: Page, live_server: LiveServer
) -> None:
    token = _open(page, live_server)
    by_kind = {a["kind"]: a for a in _api(live_server, token) if a["state"] == "OPEN"}
    spike, trajectory = by_kind["SPIKE_ON_QUIET_KEY"], by_kind["CAP_TRAJECTORY"]
    assert _actions(_item(page, spike))[:2] == ["rotate", "suspend"]
    assert _actions(_item(page, trajectory))[:2] == ["raise-cap", "find-agent"]
    for anomaly in (spike, trajectory):
        assert {"acknowledge", "dismiss"} <= set(_actions(_item(page, anomaly)))
    # The leak's anomaly names the key's leak policy, here the default.
    expect(_item(page, spike).locator(".anomaly-policy")).to_contain_text("alert only")

    # "Find the agent": the day's log of that key and agent.
    _item(page, trajectory).get_by_role("button", name=re.compile("^Find the agent")).click()
    log = page.locator("#request-log")
    expect(log).to_be_visible()
    expect(log.locator(".log-agent")).to_be_visible()
    assert (
        f"logAgent={trajectory['agentId']}" in page.url
        and f"logKey={trajectory['keyId']}" in page.url
    )
    log.get_by_role("button", name="Close the request log").click()

    # Raise cap is prefilled above the cap.
    _item(page, trajectory).get_by_role("button", name=re.compile("^Raise cap")).click()
    dialog = page.locator("#cap-dialog")
    raised = float(dialog.locator("#cap-dollars").input_value()) * 100
    assert raised > trajectory["key"]["spendCapCents"]
    page.keyboard.press("Escape")


def test_a_runaway_day_offers_a_lower_cap_and_its_log(
    browser: Browser, live_server: LiveServer
) -> None:
    context = new_context(browser, live_server, viewport=LAPTOP)
    try:
        page = context.new_page()
        token = _open(page, live_server, user="user_demo_dave")
        (runaway,) = [a for a in _api(live_server, token) if a["kind"] == "RUNAWAY_DAY"]
        item = _item(page, runaway)
        assert _actions(item)[:2] == ["lower-cap", "log"]
        screenshot(page, "anomaly-runaway-actions", full_page=False)
        item.get_by_role("button", name=re.compile("^Lower cap")).click()
        dialog = page.locator("#cap-dialog")
        expect(dialog.locator("h2")).to_contain_text("Lower the monthly cap")
        prefilled = round(float(dialog.locator("#cap-dollars").input_value()) * 100)
        key = runaway["key"]
        # At or below what the key has spent, never above its current cap.
        assert prefilled <= key["accruedCents"]
        if key["spendCapCents"] is not None:
            assert prefilled <= key["spendCapCents"]
        page.keyboard.press("Escape")
        item.get_by_role("button", name=re.compile("^Open log")).click()
        log = page.locator("#request-log")
        expect(log).to_be_visible()
        assert f"logKey={runaway['keyId']}" in page.url and f"log={runaway['date']}" in page.url
        expect(log.locator(".log-count")).not_to_have_text("0")
    finally:
        context.close()


def test_each_anomaly_shows_the_key_at_detection_and_now(
    page: Page, live_server: LiveServer
) -> None:
    token = _open(page, live_server)
    for anomaly in _api(live_server, token):
        item = _item(page, anomaly)
        detected, now = item.locator(".anomaly-detected"), item.locator(".anomaly-now")
        expect(detected).to_contain_text("Detected")
        if anomaly["atDetection"]:
            expect(detected).to_contain_text(money(anomaly["atDetection"]["accruedCents"]))
        key = anomaly["key"]
        expect(now).to_contain_text(money(key["accruedCents"]))
        if key["spendCapCents"] is not None:
            expect(now).to_contain_text(money(key["spendCapCents"]))
    screenshot(page, "anomaly-detected-vs-now", full_page=False)


def test_a_member_sees_anomalies_without_admin_actions(
    browser: Browser, live_server: LiveServer
) -> None:
    context = new_context(browser, live_server, viewport=LAPTOP)
    try:
        page = context.new_page()
        token = _open(page, live_server, user="user_demo_carol")
        anomalies = _api(live_server, token)
        assert anomalies and not any(a["viewerMayAct"] for a in anomalies)
        for anomaly in anomalies:
            allowed = {"log", "find-agent"}
            assert set(_actions(_item(page, anomaly))) <= allowed, anomaly["kind"]
    finally:
        context.close()


def test_acting_changes_the_state_and_resolved_ones_stay(
    page: Page, live_server: LiveServer
) -> None:
    token = _open(page, live_server)
    by_kind = {a["kind"]: a for a in _api(live_server, token) if a["state"] == "OPEN"}
    spike, trajectory = by_kind["SPIKE_ON_QUIET_KEY"], by_kind["CAP_TRAJECTORY"]

    # Rotating the leaked key from its anomaly resolves it: no "Rotate key" any more.
    _item(page, spike).get_by_role("button", name=re.compile("^Rotate key")).click()
    dialog = page.locator("#rotate-dialog")
    dialog.get_by_role("button", name="Rotate key").click()
    expect(dialog.get_by_label("New secret")).to_be_visible()
    dialog.get_by_role("button", name="Done").click()
    item = _item(page, spike)
    expect(item).to_have_attribute("data-anomaly-state", "resolved")
    expect(item).to_have_class(re.compile(r"\bis-resolved\b"))
    expect(item.locator(".anomaly-status")).to_contain_text("key rotated by user_demo_alice")
    expect(item.get_by_role("button", name=re.compile("^Rotate key"))).to_have_count(0)

    # Acknowledge, then dismiss with a reason.
    item = _item(page, trajectory)
    item.get_by_role("button", name=re.compile("^Acknowledge")).click()
    expect(item).to_have_attribute("data-anomaly-state", "acknowledged")
    expect(item.locator(".anomaly-status")).to_contain_text("Acknowledged by user_demo_alice")
    item.get_by_role("button", name=re.compile("^Dismiss")).click()
    item.get_by_label("Why is this not a problem?").fill("a planned launch")
    item.get_by_role("button", name="Dismiss", exact=True).click()
    expect(item).to_have_attribute("data-anomaly-state", "resolved")
    expect(item.locator(".anomaly-status")).to_contain_text("dismissed by user_demo_alice")
    expect(item.locator(".anomaly-status")).to_contain_text("a planned launch")
    screenshot(page, "anomalies-resolved", full_page=False)

    # Both stay in the period's history, after a reload too.
    page.reload()
    expect(page.locator("#anomalies")).to_have_attribute("data-state", "ready")
    for anomaly in (spike, trajectory):
        expect(_item(page, anomaly)).to_have_attribute("data-anomaly-state", "resolved")


def _bundle(key_id: str, server: LiveServer) -> str:
    """Five quiet weeks of a few cents a day on the key, then a leak's flood minutes ago."""
    now = server.now().replace(microsecond=0)
    lines = []
    for d in range(35, 0, -1):
        for i in range(3):
            at = now - timedelta(days=d, seconds=i)
            lines.append((at, 4 / 3))
    for i in range(200):
        lines.append((now - timedelta(minutes=8) + timedelta(seconds=i), 5.0))
    return "\n".join(
        json.dumps(
            {
                "type": "llm",
                "id": f"leak-{uuid.uuid4().hex}",
                "ts": at.isoformat(),
                "keyId": key_id,
                "provider": "openai",
                "model": "gpt-4o",
                "inputTokens": 100,
                "outputTokens": 10,
                "costCents": round(cents, 6),
            }
        )
        for at, cents in lines
    )


def test_a_suspend_leak_policy_suspends_the_key_within_seconds_and_is_undone(
    page: Page, live_server: LiveServer
) -> None:
    token = _open(page, live_server)
    account = live_server.graphql(token, "{ accounts { id name } }")["accounts"][0]["id"]
    created = live_server.graphql(
        token,
        'mutation($a: ID!) { createVirtualKey(input: {accountId: $a, name: "zz-leaky", provider: "openai"}) '
        "{ ... on CreateVirtualKeySuccess { key { id } } } }",
        {"a": account},
    )
    key_id = created["createVirtualKey"]["key"]["id"]
    page.reload()
    card = page.locator(f'.key-card[data-key-id="{key_id}"]')
    expect(card).to_be_visible()
    card.get_by_label(re.compile("On a spike")).select_option("SUSPEND")
    expect(card.locator(".leak-policy-status")).to_have_text("Saved")

    response = httpx.post(
        f"{live_server.base_url}/api/events",
        content=_bundle(key_id, live_server),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    # The server's watcher detects the spike and applies the policy within seconds. A reload
    # reads the key cards and the anomalies apart: when the policy lands between the two reads
    # (and before the page's live subscription is open), only the next reload shows both, so
    # the loop waits for both.
    item = page.locator(f'.anomaly[data-kind="SPIKE_ON_QUIET_KEY"][data-anomaly-id*="{key_id}"]')
    for _ in range(30):
        page.reload()
        page.wait_for_selector("#anomalies[data-state=ready]")
        page.wait_for_selector("#keys[data-state=ready]")
        if (
            item.count()
            and item.locator(".anomaly-policy[data-policy-action]").count()
            and card.locator(".key-status-suspended").count()
        ):
            break
        page.wait_for_timeout(1000)
    expect(item.locator(".anomaly-policy")).to_have_attribute("data-policy-action", "SUSPENDED")
    expect(item.locator(".anomaly-policy")).to_contain_text("suspended automatically")
    expect(item.locator(".anomaly-now .badge")).to_have_text("suspended")
    expect(card.locator(".key-status-suspended")).to_be_visible()
    screenshot(page, "anomaly-leak-policy-suspended", full_page=False)

    item.get_by_role("button", name="Resume key").click()
    expect(item.locator(".anomaly-policy")).to_contain_text("Reverted by user_demo_alice")
    expect(card.locator(".key-status-suspended")).to_have_count(0)
    keys = live_server.graphql(token, "{ virtualKeys { id status leakPolicy } }")["virtualKeys"]
    assert [(k["status"], k["leakPolicy"]) for k in keys if k["id"] == key_id] == [
        ("active", "SUSPEND")
    ]

    # Suspending by hand, from the anomaly, resolves it as suspended.
    page.once("dialog", lambda dialog: dialog.accept())
    item.get_by_role("button", name=re.compile("^Suspend key")).click()
    expect(item).to_have_attribute("data-anomaly-state", "resolved")
    expect(item.locator(".anomaly-status")).to_contain_text("key suspended by user_demo_alice")
    expect(card.locator(".key-status-suspended")).to_be_visible()
