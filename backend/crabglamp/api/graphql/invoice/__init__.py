"""The month's invoice: each axis rounded half-up to whole cents."""
