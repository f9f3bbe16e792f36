"""Anomalies: a sudden spike on a quiet key, a cap trajectory, a runaway day."""
