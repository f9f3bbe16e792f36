"""One account's failed background step, logged with the account and counted in `/metrics`, so
that the loop goes on with every other account.

A single tenant's bad data (a row from before the timestamp bounds, say) once made every pass
fail before any alert was delivered; now each step of each account runs on its own
(`watch.py`, `billing.py`), and `crabglamp_background_failures_total{step}` says how often one
did not.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Final, Literal

from crabglamp.proxy.metrics import Metrics

log = logging.getLogger("crabglamp.jobs")

FAILURES_METRIC: Final = "crabglamp_background_failures_total"
Step = Literal["anomaly_detection", "cap_crossings", "alert_delivery", "billing"]
STEPS: Final[tuple[Step, ...]] = ("anomaly_detection", "cap_crossings", "alert_delivery", "billing")


class StepFailures:
    """Where the background steps report a failure; `counts` is this process's tally."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.counts: Counter[Step] = Counter()
        if metrics is not None:
            metrics.counter(
                FAILURES_METRIC,
                "Background steps (per account) that failed; the others went on.",
                ("step",),
            )
            for step in STEPS:
                metrics.inc(FAILURES_METRIC, (step,), 0)  # every series shows, at 0

    def failed(self, step: Step, account_id: uuid.UUID | None, what: str = "") -> None:
        """Call from an `except` block: the traceback goes to the log."""
        self.counts[step] += 1
        if self.metrics is not None:
            self.metrics.inc(FAILURES_METRIC, (step,))
        whose = f"account {account_id}" if account_id is not None else "all accounts"
        log.exception(
            "background step %s failed for %s%s", step, whose, f" ({what})" if what else ""
        )
