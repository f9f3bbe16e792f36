"""The usage bundle of CONTRACTS.md §4: JSON Lines in (`crabglamp import`, `POST /api/events`) and out
(`crabglamp export`). `lines.py` describes the format.

The API, shared by the CLI (`commands.py`) and the REST endpoint, is re-exported here as the
package's public face:

    parsed = parse_bundle(lines)
    report = await apply_bundle(engine, ingestor, parsed, skip_invalid=False,
                                allowed_account_ids=None)

`parse_bundle(lines)` (`parse.py`) needs no database. `lines` are the lines of the body, str or
bytes, with or without their line ending, in order (split bytes on b"\\n": `str.splitlines`
also splits on U+2028, which JSON strings may hold). Blank lines are skipped but counted. It
returns `ParsedBundle(lines, problems)`: the well-formed lines and a `Problem(line, field,
reason)` for every defect (bad JSON, unknown type, missing/unknown/ill-typed field, negative
number, bad timestamp, end before start...). Line numbers are 1-based, as in the file.

`apply_bundle(...)` (`apply.py`) adds the checks that need the database (`checks.py`) —
references, tenancy, a price for events without `costCents`, events already stored with other
content — and writes in ONE transaction: entities are upserted (the same id again updates it;
accounts, agents, plain VMs and keys never move to another account), events go through
`Ingestor.record_in` in chunks, so rollups follow and re-importing changes nothing. When any line
is bad, nothing is written, unless `skip_invalid`, which writes the good lines and refuses the
bad ones and every line that refers to something a refused line defines. `allowed_account_ids`
(None means platform-wide) refuses each line that touches another account, and price lines. It
returns an `ImportReport` (`report.py`): `problems` (sorted by line), `committed`, entities
`created`/`updated`/`unchanged` per type, events `inserted`/`duplicates`/`closed_intervals`;
`to_json()` gives its camelCase JSON form.

`export_bundle(conn, account_id, period)` (`export.py`) yields the JSON objects of an account and
its events of a period; `dump_line(obj)` writes one as a line.
"""

from __future__ import annotations

from crabglamp.bundle.apply import Progress, apply_bundle
from crabglamp.bundle.export import dump_line, export_bundle
from crabglamp.bundle.lines import (
    AccountEntry,
    AgentEntry,
    BundleLine,
    KeyEntry,
    MemberEntry,
    ParsedBundle,
    PlainVmEntry,
    Problem,
)
from crabglamp.bundle.parse import parse_bundle
from crabglamp.bundle.report import ImportReport

__all__ = [
    "AccountEntry",
    "AgentEntry",
    "BundleLine",
    "ImportReport",
    "KeyEntry",
    "MemberEntry",
    "ParsedBundle",
    "PlainVmEntry",
    "Problem",
    "Progress",
    "apply_bundle",
    "dump_line",
    "export_bundle",
    "parse_bundle",
]
