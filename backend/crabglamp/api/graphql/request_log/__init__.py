"""The per-request log behind a chart's bar: a Relay-style connection with keyset cursors."""
