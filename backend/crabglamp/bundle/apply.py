"""Applying a parsed bundle: the database's checks, its prices for events without a cost, then
ONE transaction, so that a bundle is written whole or not at all (unless `skip_invalid`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Final

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.access import Caller
from crabglamp.bundle._write import OPERATOR, audit_organisations, write_entities
from crabglamp.bundle.checks import Checker, load_state
from crabglamp.bundle.lines import (
    AccountEntry,
    BundleLine,
    Entity,
    ParsedBundle,
    Problem,
    entity_key,
    entity_of,
)
from crabglamp.bundle.report import ImportReport
from crabglamp.db import write_transaction
from crabglamp.db.changes import ALL_KINDS, announce
from crabglamp.db.chunks import chunks
from crabglamp.db.retry import retryable, with_retries
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.pricing import catalog_cost
from crabglamp.ingest.records import ComputeRecord, IngestError, LlmRecord, Record, VoiceRecord
from crabglamp.periods import utcnow
from crabglamp.prices import PriceBook, PriceNotFound, UnitPrice

_EVENT_CHUNK: Final = 5000  # events per Ingestor.record_in call
_RETRIES: Final = 3

Progress = Callable[[int, int], None]


async def apply_bundle(
    engine: AsyncEngine,
    ingestor: Ingestor,
    parsed: ParsedBundle,
    *,
    skip_invalid: bool,
    allowed_account_ids: set[uuid.UUID] | None = None,
    progress: Progress | None = None,
    caller: Caller | None = None,
) -> ImportReport:
    """Check what needs the database and write the bundle in one transaction (see the package
    docstring).

    `progress(done, total)` hears of events written so far. `caller` is who sent it
    (`POST /api/events`); None is the operator's own `crabglamp import`, trusted to bind accounts
    to Clerk organisations. Every such change is recorded in `account_audit`, with who made it.
    """
    return await with_retries(
        lambda: _apply_once(
            engine, ingestor, parsed, skip_invalid, allowed_account_ids, progress, caller
        ),
        attempts=_RETRIES,
        backoff=0.05,
        retry_if=_transient,
    )


async def _apply_once(
    engine: AsyncEngine,
    ingestor: Ingestor,
    parsed: ParsedBundle,
    skip_invalid: bool,
    allowed: set[uuid.UUID] | None,
    progress: Progress | None,
    caller: Caller | None,
) -> ImportReport:
    report = ImportReport(line_count=parsed.line_count)
    problems = list(parsed.problems)
    try:
        async with write_transaction(engine) as conn:
            stored = await load_state(conn, parsed)
            checker = Checker(parsed, stored, allowed, caller)
            checker.run(parsed.lines)
            problems += checker.problems
            new_prices = [
                line.item for line in checker.entities if isinstance(line.item, UnitPrice)
            ]
            book = _with_prices(ingestor.prices, new_prices) if new_prices else ingestor.prices
            events = _priced(book, checker.events, problems)
            events = _deduplicated(events, problems, report)

            final: dict[tuple[str, object], Entity] = {}
            for line in checker.entities:
                entity = entity_of(line.item)
                assert entity is not None
                final[entity_key(entity)] = entity
            changed = []
            for spot, item in final.items():
                kind, before = spot[0], stored.entities.get(spot)
                if before is None:
                    report.created[kind] += 1
                elif before != item:
                    report.updated[kind] += 1
                else:
                    report.unchanged[kind] += 1
                    continue
                changed.append(item)
            await write_entities(conn, changed)
            await audit_organisations(
                conn, stored, changed, caller.user_id if caller else OPERATOR, utcnow()
            )
            # The events announce themselves (Ingestor.record_in); a renamed key, agent or VM
            # shows in every part of the page.
            await announce(conn, {account: ALL_KINDS for account in _accounts_of(changed)})
            # Checking against stored events is record_in's: run it even when lines are already
            # refused, so that every bad line is reported at once.
            await _record(conn, ingestor, events, report, problems, progress)
            report.problems = sorted(problems, key=lambda p: (p.line, p.field or ""))
            if report.problems and not skip_invalid:
                raise _RollBack(report)
    except _RollBack as rollback:
        return rollback.report
    report.committed = True
    if new_prices:
        ingestor.prices = book
    return report


def _with_prices(book: PriceBook, added: Sequence[UnitPrice]) -> PriceBook:
    prices = {(p.provider, p.model, p.valid_from): p for p in book.prices}
    prices.update({(p.provider, p.model, p.valid_from): p for p in added})
    return PriceBook(prices.values())


def _priced(
    book: PriceBook, lines: Sequence[BundleLine], problems: list[Problem]
) -> list[BundleLine]:
    """Events without a cost get the catalog's price at their timestamp."""
    out = []
    for line in lines:
        item = line.item
        # Failed events stay as sent: the Ingestor records them free of charge.
        try:
            if (
                isinstance(item, LlmRecord | VoiceRecord)
                and item.cost_micros is None
                and item.status == "ok"
            ):
                cost = catalog_cost(book, item)
                line = BundleLine(line.number, replace(item, cost_micros=cost))
        except PriceNotFound as exc:
            problems.append(Problem(line.number, "costCents", str(exc)))
            continue
        out.append(line)
    return out


def _deduplicated(
    lines: Sequence[BundleLine], problems: list[Problem], report: ImportReport
) -> list[BundleLine]:
    """One line per event id: repeats count as duplicates, conflicting repeats are refused."""
    kept: dict[str, BundleLine] = {}
    for line in lines:
        item = line.item
        assert isinstance(item, LlmRecord | VoiceRecord | ComputeRecord)
        first = kept.get(item.id)
        if first is None:
            kept[item.id] = line
            continue
        earlier = first.item
        if type(earlier) is not type(item):
            problems.append(
                Problem(
                    line.number,
                    "id",
                    f"event id {item.id!r} is used on line {first.number} already",
                )
            )
        elif earlier == item:
            report.duplicates += 1
        elif (
            isinstance(item, ComputeRecord)
            and isinstance(earlier, ComputeRecord)
            and replace(item, end=None) == replace(earlier, end=None)
            and (item.end is None or earlier.end is None)
        ):
            # The one allowed change: an open interval sent again with its end. Keep the end.
            report.duplicates += 1
            if earlier.end is None:
                kept[item.id] = BundleLine(first.number, item)
        else:
            problems.append(
                Problem(
                    line.number,
                    "id",
                    f"event id {item.id!r} is on line {first.number} already, with other content",
                )
            )
    return list(kept.values())


_COLUMN_NAMES: Final = {
    "ts": "ts",
    "account_id": "accountId",
    "key_id": "keyId",
    "agent_id": "agentId",
    "plain_vm_id": "plainVmId",
    "provider": "provider",
    "model": "model",
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "cost_micros": "costCents",
    "voice_model": "voiceModel",
    "characters": "characters",
    "status": "status",
    "state": "state",
    "start": "start",
    "end": "end",
    "cents_per_hour_micros": "centsPerHour",
}


def _in_bundle_terms(event_line: int, reason: str) -> Problem:
    """The Ingestor's word on an event, in the bundle's names."""
    prefix = "event id already recorded with different "
    if reason.startswith(prefix):
        names = [_COLUMN_NAMES.get(n, n) for n in reason[len(prefix) :].split(", ")]
        return Problem(event_line, "id", f"is already stored with different {', '.join(names)}")
    return Problem(event_line, None, reason)


async def _record(
    conn: AsyncConnection,
    ingestor: Ingestor,
    events: Sequence[BundleLine],
    report: ImportReport,
    problems: list[Problem],
    progress: Progress | None,
) -> None:
    done = 0
    for chunk in chunks(events, _EVENT_CHUNK):
        pending = list(chunk)
        while pending:
            by_id = {_event_id(line): line for line in pending}
            try:
                result = await ingestor.record_in(conn, [_record_of(line) for line in pending])
            except IngestError as exc:
                # record_in wrote nothing of this chunk: drop what it refused and go again.
                refused = {p.event_id for p in exc.problems if p.event_id in by_id}
                if not refused:
                    raise
                for p in exc.problems:
                    if p.event_id in by_id:
                        problems.append(_in_bundle_terms(by_id[p.event_id].number, p.reason))
                pending = [line for line in pending if _event_id(line) not in refused]
                continue
            report.inserted += result.inserted
            report.duplicates += result.duplicates
            report.closed_intervals += result.closed_intervals
            break
        done += len(chunk)
        if progress is not None:
            progress(done, len(events))


def _accounts_of(entities: Sequence[Entity]) -> set[uuid.UUID]:
    found = set()
    for entity in entities:
        account = getattr(entity, "account_id", None)
        if account is None and isinstance(entity, AccountEntry):
            account = entity.id
        if isinstance(account, uuid.UUID):
            found.add(account)
    return found


def _record_of(line: BundleLine) -> Record:
    assert isinstance(line.item, LlmRecord | VoiceRecord | ComputeRecord)
    return line.item


def _event_id(line: BundleLine) -> str:
    return _record_of(line).id


class _RollBack(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__("bundle refused")
        self.report = report


def _transient(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        # A concurrent writer stored one of our event ids first: the next try sees a duplicate.
        # Any other constraint (an entity's) would fail the same way again.
        text = str(exc.orig).lower()
        return "_event" in text or "compute_interval" in text
    return retryable(exc)
