"""Whom the development sign-in offers: the demo's people, or a fallback list without the demo."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class DevUser:
    user_id: str
    name: str
    org_id: str | None = None
    org_role: str | None = None
    is_platform_admin: bool = False


# The demo's people (crabglamp.dev.demo seeds their accounts); used when that module is absent.
FALLBACK_DEMO_USERS: Final = (
    DevUser("user_demo_alice", "Alice — admin of Acme", "org_demo_acme", "admin"),
    DevUser("user_demo_carol", "Carol — member of Acme", "org_demo_acme", "member"),
    DevUser("user_demo_bob", "Bob — personal account"),
    DevUser("user_demo_dave", "Dave — admin of Globex", "org_demo_globex", "admin"),
    DevUser("user_demo_admin", "Platform admin", is_platform_admin=True),
)


def _field(item: object, *names: str) -> Any:
    for name in names:
        value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
        if value is not None:
            return value
    return None


def _as_dev_user(item: object, default_id: object = None) -> DevUser | None:
    user_id = _field(item, "user_id", "clerk_user_id", "id") or default_id
    if not isinstance(user_id, str) or not user_id:
        return None
    org_id = _field(item, "org_id", "clerk_org_id")
    org_role = _field(item, "org_role", "role")
    name = _field(item, "name", "display_name", "label") or user_id
    admin = bool(_field(item, "is_platform_admin", "platform_admin", "admin"))
    return DevUser(
        user_id=user_id,
        name=str(name),
        org_id=org_id if isinstance(org_id, str) else None,
        org_role=org_role if isinstance(org_role, str) and org_id else None,
        is_platform_admin=admin,
    )


def demo_users() -> tuple[DevUser, ...]:
    """crabglamp.dev.demo's users when that module provides them, else the fallback list."""
    try:
        # Imported by name: the demo module is optional and may not define its users.
        found: object = getattr(importlib.import_module("crabglamp.dev.demo"), "DEMO_USERS", None)
    except ImportError:
        return FALLBACK_DEMO_USERS
    if not isinstance(found, Iterable) or isinstance(found, str):
        return FALLBACK_DEMO_USERS
    # A list of users, or a mapping from user id to user; each a mapping or an object.
    items: Iterable[tuple[Any, object]] = (
        found.items() if isinstance(found, Mapping) else ((None, item) for item in found)
    )
    users = tuple(user for key, item in items if (user := _as_dev_user(item, key)) is not None)
    return users or FALLBACK_DEMO_USERS
