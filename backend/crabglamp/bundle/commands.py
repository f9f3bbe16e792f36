"""`crabglamp import` and `crabglamp export`: files, progress on stderr, exit codes."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final, TextIO

from crabglamp.bundle.apply import apply_bundle
from crabglamp.bundle.export import dump_line, export_bundle
from crabglamp.bundle.lines import ParsedBundle, is_event
from crabglamp.bundle.parse import parse_bundle
from crabglamp.bundle.report import PLURALS
from crabglamp.db import make_engine, read_transaction
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.periods import parse_month
from crabglamp.prices import load_price_book
from crabglamp.settings import Settings

LARGE_BUNDLE: Final = 50_000  # events; above this a progress bar shows even without a terminal


class ProgressBar:
    """A bar on stderr: redrawn in place on a terminal, one line per tenth otherwise (logs)."""

    def __init__(self, label: str, stream: TextIO, *, interactive: bool) -> None:
        self.label = label
        self.stream = stream
        self.interactive = interactive
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total <= 0 else min(100, done * 100 // total)
        step = percent if self.interactive else percent // 10 * 10
        if step == self._shown:
            return
        self._shown = step
        filled = percent * 30 // 100
        bar = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {percent:3d}% {done:,}/{total:,}"
        if self.interactive:
            self.stream.write("\r" + bar)
            if done >= total:
                self.stream.write("\n")
        else:
            self.stream.write(bar + "\n")
        self.stream.flush()


def _reading(stream: IO[bytes], size: int, bar: ProgressBar | None) -> Iterator[bytes]:
    read = 0
    for line in stream:
        read += len(line)
        if bar is not None:
            bar(read, size)
        yield line
    if bar is not None:
        bar(size, size)


def _parse_file(file: str, interactive: bool) -> ParsedBundle:
    if file == "-":
        return parse_bundle(sys.stdin.buffer)
    with Path(file).open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        large = size >= (1 << 20 if interactive else 64 << 20)
        bar = ProgressBar("reading  ", sys.stderr, interactive=interactive) if large else None
        return parse_bundle(_reading(stream, size, bar))


async def import_command(settings: Settings, file: str, *, skip_invalid: bool) -> int:
    """`crabglamp import FILE`: 0 when every line was written, 1 when lines were refused, 2 when
    the file cannot be read."""
    from crabglamp.migrate import upgrade

    interactive = sys.stderr.isatty()
    name = "<stdin>" if file == "-" else file
    try:
        parsed = _parse_file(file, interactive)
    except OSError as exc:
        print(f"crabglamp import: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return 2

    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            prices = await load_price_book(conn)
        events = sum(1 for line in parsed.lines if is_event(line.item))
        show = events > 0 and (interactive or events >= LARGE_BUNDLE)
        bar = ProgressBar("importing", sys.stderr, interactive=interactive) if show else None
        report = await apply_bundle(
            engine, Ingestor(engine, prices), parsed, skip_invalid=skip_invalid, progress=bar
        )
    finally:
        await engine.dispose()

    for problem in report.problems:
        print(f"{name}:{problem}", file=sys.stderr)
    if report.committed:
        print(f"{name}: {report.summary()}")
    else:
        others = report.line_count - report.refused_lines
        print(
            f"{name}: {report.summary()} (fix them, or use --skip-invalid to write the other "
            f"{others:,})",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


async def export_command(settings: Settings, account: str, month: str, output: str) -> int:
    """`crabglamp export --account ID --month YYYY-MM [-o FILE]`: 0 when written, 2 for bad
    arguments or an unknown account."""
    try:
        account_id = uuid.UUID(account)
    except ValueError:
        print(f"crabglamp export: --account must be a UUID, got {account!r}", file=sys.stderr)
        return 2
    try:
        period = parse_month(month)
    except ValueError as exc:
        print(f"crabglamp export: --month: {exc}", file=sys.stderr)
        return 2

    counts: Counter[str] = Counter()
    engine = make_engine(settings.database_url)
    target: TextIO
    temporary: Path | None = None
    if output == "-":
        target = sys.stdout
    else:
        # Written beside the target and renamed at the end: never a half-written bundle.
        destination = Path(output)
        handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
        temporary = Path(temp_name)
        target = os.fdopen(handle, "w", encoding="utf-8")
    try:
        async with read_transaction(engine) as conn:
            async for obj in export_bundle(conn, account_id, period):
                counts[str(obj["type"])] += 1
                target.write(dump_line(obj) + "\n")
        target.flush()
        if temporary is not None:
            target.close()
            temporary.replace(output)
            temporary = None
    except LookupError as exc:
        print(f"crabglamp export: {exc}", file=sys.stderr)
        return 2
    finally:
        if temporary is not None:
            target.close()
            temporary.unlink(missing_ok=True)
        await engine.dispose()

    entities = ", ".join(
        f"{counts[kind]:,} {PLURALS[kind]}" for kind in ("member", "agent", "plainVm", "key")
    )
    events = ", ".join(f"{counts[kind]:,} {kind}" for kind in ("llm", "voice", "compute"))
    where = "standard output" if output == "-" else output
    print(
        f"exported account {account_id}, {month}: {entities}; events {events} to {where}",
        file=sys.stderr,
    )
    return 0
