"""`just eval-anomalies`: labelled months of synthetic keys, and how well detection finds them.

Every key gets five weeks of history and one calendar month, hour by hour, from one of these
scenarios (the labels say which anomalies it must raise, and when):

- leak: a quiet key (cents a day, used most days) whose token leaks on day L: dollars an hour
  on an expensive model for a few hours or days. Label: SPIKE_ON_QUIET_KEY on day L or L+1.
- cap: a busy key heading for its cap (steady, or stepping up when a new agent starts); the cap
  is reached before the month ends. Label: CAP_TRAJECTORY before the day the cap is reached,
  naming the agent that spent the most so far.
- runaway: an idle key (a job a few days a month) with one huge day R, one model, many
  requests. Label: RUNAWAY_DAY on day R, naming that model and its request count.
- noisy: ordinary busy keys with a weekly rhythm, day-to-day noise, busy days and growth, some
  with a break of several zero days; half of them capped with headroom. No label: they must not
  alarm.
- growing: keys that grow steadily and fast (4-12% a day). Must never raise SPIKE_ON_QUIET_KEY.
- quiet and idle: like leak and runaway keys without the incident (some with a busy day, some
  with a big day that stays below the absolute floor). No label.

Each month is judged day by day as `anomalies` judges a past month (`detect_key`), and
precision and recall are reported per kind. The test suite runs a fixed seed
(tests/jobs/test_anomalies.py); `--database URL` also judges a seed from a database's rollups.

`labels.py` holds the judged month and what each key must raise, `spending.py` how a synthetic
key spends, `scenarios.py` the scenarios above, `scoring.py` precision and recall,
`database.py` the same keys through a database, and `__main__.py` the command.
"""
