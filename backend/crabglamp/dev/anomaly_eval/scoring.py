"""Scoring: each key's detections against its labels, as precision and recall per kind."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from crabglamp.dev.anomaly_eval.labels import MONTH, LabelledKey
from crabglamp.jobs.anomalies.anomaly import Anomaly, AnomalyKind
from crabglamp.jobs.anomalies.detectors import detect_key
from crabglamp.periods import day_start
from crabglamp.settings import Thresholds


@dataclass(slots=True)
class KindScore:
    kind: AnomalyKind
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    named_right: int = 0  # true positives naming the expected agent or model and count
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


@dataclass(slots=True)
class Evaluation:
    keys: int
    scores: dict[AnomalyKind, KindScore]
    growing_spikes: int  # SPIKE_ON_QUIET_KEY on a steadily growing key (must be 0)
    found: dict[uuid.UUID, list[Anomaly]]

    def table(self) -> str:
        lines = [
            f"{'kind':<20} {'precision':>9} {'recall':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'named':>6}"
        ]
        for kind, s in self.scores.items():
            lines.append(
                f"{kind.value:<20} {s.precision:>9.3f} {s.recall:>7.3f} {s.true_positives:>4} "
                f"{s.false_positives:>4} {s.false_negatives:>4} "
                f"{s.named_right:>3}/{s.true_positives:<3}"
            )
        lines.append(f"SPIKE_ON_QUIET_KEY on steadily growing keys: {self.growing_spikes}")
        return "\n".join(lines)


def _top_agent(item: LabelledKey, until: date) -> uuid.UUID | None:
    spent: dict[uuid.UUID | None, int] = {}
    for (agent, day), cost in item.agent_days.items():
        if MONTH.start <= day <= until:
            spent[agent] = spent.get(agent, 0) + cost
    return max(spent.items(), key=lambda kv: kv[1])[0] if spent else None


def score(
    items: Sequence[LabelledKey],
    found: dict[uuid.UUID, list[Anomaly]],
) -> Evaluation:
    scores = {kind: KindScore(kind) for kind in AnomalyKind}
    growing_spikes = 0
    for item in items:
        key_id = item.activity.key_id
        detected = {a.kind: a for a in found.get(key_id, [])}
        labels = {label.kind: label for label in item.labels}
        for kind in AnomalyKind:
            s, label, anomaly = scores[kind], labels.get(kind), detected.get(kind)
            name = f"{item.activity.name}"
            if anomaly is not None and item.scenario == "growing":
                growing_spikes += kind is AnomalyKind.SPIKE_ON_QUIET_KEY
            if label is None:
                if anomaly is not None:
                    s.false_positives += 1
                    s.false_alarms.append(f"{name} on {anomaly.day}: {anomaly.message}")
                continue
            if anomaly is None or not label.first_day <= anomaly.day <= label.last_day:
                s.false_negatives += 1
                when = "not detected" if anomaly is None else f"detected on {anomaly.day}"
                s.misses.append(f"{name}: wanted {label.first_day}..{label.last_day}, {when}")
                if anomaly is not None:
                    s.false_positives += 1
                continue
            s.true_positives += 1
            if kind is AnomalyKind.CAP_TRAJECTORY:
                s.named_right += anomaly.agent_id == _top_agent(item, anomaly.day)
            elif kind is AnomalyKind.RUNAWAY_DAY:
                s.named_right += (
                    anomaly.details.get("model") == label.model
                    and anomaly.details.get("modelRequestCount") == label.request_count
                )
            else:
                s.named_right += 1
    return Evaluation(len(items), scores, growing_spikes, found)


def evaluate(
    items: Sequence[LabelledKey], t: Thresholds | None = None, now: datetime | None = None
) -> Evaluation:
    """Judge every key's month as `anomalies` judges a past month."""
    t = t or Thresholds()
    now = now or day_start(MONTH.end + timedelta(days=1))
    days = MONTH.days
    found = {item.activity.key_id: detect_key(item.activity, days, now, t) for item in items}
    return score(items, found)
