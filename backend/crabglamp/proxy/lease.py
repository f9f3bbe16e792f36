"""A process's lease on the spend reservations it holds, renewed by a heartbeat.

Each process that admits requests holds one `proxy_lease` row and tags its reservations with it.
When the process is gone its reservations belong to nobody, and another process's sweeper frees
them within seconds instead of waiting out `max_request_seconds` (CONTRACTS.md §1.4):

- on the same machine (the same kernel boot and process namespace) a process that no longer
  exists is gone at once, and a process that exists is alive, however late its heartbeat: a
  stalled event loop never loses its requests' reservations;
- elsewhere only the heartbeat tells: a lease not renewed within its time to live is gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import ProxyLease
from crabglamp.periods import as_utc

_leases = table_of(ProxyLease)


@cache
def _machine() -> str:
    """This host as seen by its processes: two containers sharing a hostname but not a process
    namespace must not judge each other's processes by their pids."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(os.readlink(path) if path.endswith("/pid") else _read(path))
        except OSError:
            parts.append("?")
    return "/".join(parts)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so that a pid reused by a
    new process is not taken for the old one; None where /proc does not say."""
    try:
        stat = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def _identity(pid: int) -> str:
    return f"{pid}:{_started(pid) or '?'}"


def _exists(process: str) -> bool:
    pid_text, _, started = process.partition(":")
    pid = int(pid_text)
    if os.path.isdir("/proc/self"):
        now = _started(pid)
        return now is not None and (started == "?" or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class Lease:
    id: uuid.UUID
    host: str
    process: str


def new_lease() -> Lease:
    return Lease(uuid.uuid4(), _machine(), _identity(os.getpid()))


async def renew(conn: AsyncConnection, lease: Lease, now: datetime, ttl: timedelta) -> bool:
    """The heartbeat: push the lease's expiry on, or write it anew when another process took
    this one for gone (it was late, on another host); False then, so the caller can say so."""
    renewed = await conn.execute(
        update(_leases).where(_leases.c.id == lease.id).values(expires_at=now + ttl)
    )
    if renewed.rowcount == 1:
        return True
    await conn.execute(
        _leases.insert().values(
            id=lease.id,
            host=lease.host,
            process=lease.process,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return False


async def end(conn: AsyncConnection, lease: Lease) -> None:
    """A process that stops gives its lease up: what it still holds is free at once."""
    await conn.execute(delete(_leases).where(_leases.c.id == lease.id))


async def gone_leases(
    conn: AsyncConnection, own: uuid.UUID | None, now: datetime
) -> list[uuid.UUID]:
    """The leases of processes that are certainly gone (never `own`)."""
    machine = _machine()
    rows = await conn.execute(
        select(_leases.c.id, _leases.c.host, _leases.c.process, _leases.c.expires_at)
    )
    gone = []
    for lease_id, host, process, expires_at in rows:
        if lease_id == own:
            continue
        if host == machine:
            if not _exists(process):
                gone.append(lease_id)
        elif as_utc(expires_at) < now:
            gone.append(lease_id)
    return gone
