"""Virtual keys with their cap and this month's accrued spend."""
