"""The development sign-in page: one link per demo user."""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote

from crabglamp.dev.devtokens.users import DevUser


def sign_in_page(users: Iterable[DevUser], next_path: str) -> str:
    rows = []
    for user in users:
        if user.is_platform_admin:
            what = "platform admin"
        elif user.org_id:
            what = f"{user.org_role or 'member'} of {user.org_id}"
        else:
            what = "personal account"
        href = f"/dev/sign-in?user={quote(user.user_id)}&next={quote(next_path)}"
        rows.append(
            f'<li><a href="{html.escape(href)}">{html.escape(user.name)}</a> '
            f"<code>{html.escape(user.user_id)}</code> — {html.escape(what)}</li>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Development sign-in — CrabGlamp Usage</title></head><body>"
        "<h1>Development sign-in</h1>"
        "<p>Choose a demo user. The session cookie holds a token signed by the local development "
        "key and verified like a Clerk session token. Not available in production.</p>"
        f"<ul>{''.join(rows)}</ul></body></html>"
    )
