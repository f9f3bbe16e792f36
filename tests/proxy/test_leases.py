"""A dead process's reservations are freed within seconds, a live one's never (lease.py,
CONTRACTS.md §1.4). Both engines."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import write_transaction
from crabglamp.db.tables import table_of
from crabglamp.key_secrets import hash_secret
from crabglamp.keys import CreatedKey
from crabglamp.models import ProxyLease
from crabglamp.periods import utcnow
from crabglamp.proxy.caps import SpendCaps
from crabglamp.proxy.reservation import CapExceeded, MonthSpend, Reservation
from proxy_support import make_key, reservations, spend

CENT = 1_000_000
# Reservations that would outlive any test: only a lease can free them in time.
A_DAY = timedelta(days=1)

# A process of its own that reserves on the key, says so, and then waits to be killed.
_HOLDER = """
import asyncio, sys, uuid
from datetime import timedelta
from crabglamp.db import make_engine
from crabglamp.proxy.caps import SpendCaps

async def main() -> None:
    engine = make_engine(sys.argv[1])
    caps = SpendCaps(engine, timedelta(days=1))
    r = await caps.reserve(uuid.UUID(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    print(type(r).__name__, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
async def caps(engine: AsyncEngine) -> AsyncIterator[SpendCaps]:
    caps = SpendCaps(engine, A_DAY)
    yield caps
    await caps.close()


async def _reserve(caps: SpendCaps, key: CreatedKey, amount: int) -> object:
    return await caps.reserve(key.key.id, hash_secret(key.secret), amount)


async def test_a_killed_process_reservations_are_freed_by_the_next_sweep(
    db_url: str, engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        db_url,
        str(key.key.id),
        hash_secret(key.secret),
        str(10 * CENT),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        said = await holder.stdout.readline()
        assert said.strip() == b"Reservation"
        # While it lives, the cap is taken and the sweeper leaves its reservation alone.
        assert await caps.sweep() == 0
        assert isinstance(await _reserve(caps, key, 1), CapExceeded)
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
    # Its reservation was good for a day; the process is gone, so it is freed now.
    assert await caps.sweep() == 1
    assert await spend(engine, key.key.id) == MonthSpend(0, 0)
    assert await reservations(engine) == 0
    assert isinstance(await _reserve(caps, key, 10 * CENT), Reservation)


async def test_a_live_process_keeps_its_reservations_however_late_its_heartbeat(
    engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    other = SpendCaps(engine, A_DAY, heartbeat_seconds=3600)  # never beats again
    try:
        held = await _reserve(other, key, 4 * CENT)
        assert isinstance(held, Reservation)
        # An hour later its lease has long lapsed, but its process (this one) is alive.
        assert await caps.sweep(utcnow() + timedelta(hours=1)) == 0
        assert await spend(engine, key.key.id) == MonthSpend(0, 4 * CENT)
    finally:
        await other.close()


async def test_a_lease_from_another_host_is_gone_once_it_lapses(
    engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    remote = SpendCaps(engine, A_DAY, heartbeat_seconds=3600)
    try:
        held = await _reserve(remote, key, 4 * CENT)
        assert isinstance(held, Reservation)
        assert remote.lease is not None
        # As if it ran on another machine: only its heartbeat can tell that it lives.
        async with write_transaction(engine) as conn:
            await conn.execute(
                update(table_of(ProxyLease))
                .where(table_of(ProxyLease).c.id == remote.lease.id)
                .values(host=f"elsewhere-{uuid.uuid4().hex}")
            )
        assert await caps.sweep(utcnow() + timedelta(seconds=5)) == 0  # renewed 5 s ago
        assert await caps.sweep(utcnow() + timedelta(seconds=11)) == 1  # lapsed
        assert await spend(engine, key.key.id) == MonthSpend(0, 0)
        # The process was only late: its next beat says so and writes its lease anew, and what
        # it admits from then on is held under it again.
        assert await remote.heartbeat(remote.lease) is False
        assert isinstance(await _reserve(remote, key, 4 * CENT), Reservation)
        assert await caps.sweep() == 0
    finally:
        await remote.close()


async def test_a_process_that_stops_gives_up_what_it_still_holds(
    engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    stopping = SpendCaps(engine, A_DAY)
    assert isinstance(await _reserve(stopping, key, 4 * CENT), Reservation)
    await stopping.close()
    assert await caps.sweep() == 1
    assert await spend(engine, key.key.id) == MonthSpend(0, 0)
