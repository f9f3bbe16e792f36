"""Alerts: per-account webhook endpoints, HMAC-signed deliveries with retries, each event once.

An alert is an event with a stable id — an anomaly's `dedupe_key`, or a key crossing 50, 80 or
100% of its cap in a month — turned into one delivery per enabled endpoint of the account, in
the same transaction that records the anomaly or the crossing (`outbox.enqueue`). The unique
(endpoint, event id) makes a second delivery of the same event impossible; the event id travels
as the `Idempotency-Key` header, the same on every retry, for receivers to drop duplicates.

Each attempt is POSTed signed (jobs/signing.py; `verify_signature` checks one). A non-2xx
answer, a timeout or a refused connection is retried with exponential backoff (`sender.py`);
every attempt is recorded and readable (`deliveries.py`, GraphQL `alertDeliveries`).
`endpoints.py` manages the webhooks, `events.py` says what an alert carries,
`cap_crossings.py` records spend crossing a cap. Core: no web framework here.
"""
