"""`just eval-anomalies` (`python -m crabglamp.dev.anomaly_eval`): judge seeds, print the table."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from crabglamp.dev.anomaly_eval.database import evaluate_in_database
from crabglamp.dev.anomaly_eval.labels import MONTH
from crabglamp.dev.anomaly_eval.scenarios import DEFAULT_COUNTS, generate
from crabglamp.dev.anomaly_eval.scoring import evaluate
from crabglamp.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="eval-anomalies", description="Precision and recall of anomaly detection"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario count")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds from --seed on")
    parser.add_argument("--verbose", "-v", action="store_true", help="list misses and false alarms")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="also judge the first seed from a fresh database's rollups (e.g. an empty SQLite file)",
    )
    args = parser.parse_args(argv)
    counts = {k: max(1, round(v * args.scale)) for k, v in DEFAULT_COUNTS.items()}
    t = Settings.from_env().thresholds
    worst_ok = True
    for seed in range(args.seed, args.seed + args.seeds):
        items = generate(seed, counts)
        result = evaluate(items, t)
        print(f"seed {seed}: {result.keys} keys, {MONTH.start:%Y-%m} judged day by day")
        print(result.table())
        if args.verbose:
            for s in result.scores.values():
                for line in s.misses + s.false_alarms:
                    print("   ", s.kind.value, line)
        print()
        worst_ok &= all(s.recall == 1.0 and s.precision >= 0.95 for s in result.scores.values())
        worst_ok &= result.growing_spikes == 0
        if args.database and seed == args.seed:
            from_db = asyncio.run(evaluate_in_database(args.database, items, t))
            print(f"seed {seed} through the rollups of {args.database}:")
            print(from_db.table())
            print()
            worst_ok &= from_db.table() == result.table()
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
