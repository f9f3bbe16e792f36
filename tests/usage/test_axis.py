"""What the three axes share: one order for every breakdown, and ids read as the driver gives them."""

from __future__ import annotations

import uuid

from crabglamp.models import NONE_ID
from crabglamp.usage._axis import Ids, sorted_by_cost
from crabglamp.usage.results import PlainVmUsage

_A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
_B = uuid.UUID("00000000-0000-0000-0000-00000000000b")
_C = uuid.UUID("00000000-0000-0000-0000-00000000000c")


def _vms(*entries: tuple[uuid.UUID, str, int]) -> list[PlainVmUsage]:
    return [PlainVmUsage(vm_id, name, cost) for vm_id, name, cost in entries]


def _order(vms: list[PlainVmUsage]) -> list[uuid.UUID]:
    return [v.plain_vm_id for v in sorted_by_cost(vms, lambda v: v.cost_micros)]


def test_the_biggest_spender_comes_first() -> None:
    assert _order(_vms((_A, "a", 5), (_B, "b", 30), (_C, "c", 12))) == [_B, _C, _A]


def test_equal_spend_is_ordered_by_identity_whatever_order_it_came_in() -> None:
    tied = [(_C, "c", 7), (_A, "a", 7), (_B, "b", 9)]
    assert _order(_vms(*tied)) == [_B, _A, _C]
    assert _order(_vms(*reversed(tied))) == [_B, _A, _C]


def test_raw_ids_become_uuids_and_no_agent_becomes_none() -> None:
    ids = Ids()
    assert ids(_A.hex) == _A  # SQLite's 32 hex digits
    assert ids(_A) == _A  # PostgreSQL's driver gives a UUID
    assert ids(_A.hex) is ids(_A.hex)
    assert ids(NONE_ID.hex) is None
    assert ids(NONE_ID) is None
    assert ids(None) is None
