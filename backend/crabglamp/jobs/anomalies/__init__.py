"""Anomaly detection over the daily and hourly LLM rollups (CONTRACTS.md §3.2).

Three patterns, each judged per key against the key's own history:

- SPIKE_ON_QUIET_KEY: an hour or a day far above the key's robust baseline (median and MAD of
  its trailing four weeks) *and* several times its busiest hour or day of those weeks, above an
  absolute floor so that cents never alarm. Keys idle on most days are left to RUNAWAY_DAY.
- CAP_TRAJECTORY: month-to-date spend plus the last week's run rate until the month ends
  reaches the cap before the month is over; names the agent that spent the most.
- RUNAWAY_DAY: a key idle on most days of its trailing weeks (yet used before) has one day far
  above its biggest earlier day; names the model and its request count.

Detection is a pure function of a key's rollups as of a moment (`detectors.detect_key`), so the
live watcher (jobs/watch.py), the `anomalies` query for a past month (`period.py`) and the
evaluation (dev/anomaly_eval/) all run the same code. `activity.py` loads what it reads,
`store.py` keeps what the watcher found; the numbers are `crabglamp.settings.Thresholds`.
Core: no web framework here.
"""
