"""Whom the development sign-in offers: the demo's people (crabglamp.dev.demo seeds their
accounts), and any other user id as a user of no organisation."""

from __future__ import annotations

from dataclasses import dataclass

from crabglamp.dev.demo.specs import DEMO_USERS


@dataclass(frozen=True, slots=True)
class DevUser:
    user_id: str
    name: str
    org_id: str | None = None
    org_role: str | None = None
    is_platform_admin: bool = False


def demo_users() -> tuple[DevUser, ...]:
    return tuple(
        DevUser(u.user_id, u.display_name, u.org_id, u.org_role, u.is_platform_admin)
        for u in DEMO_USERS
    )
