"""Live updates: the `usageChanged` subscription that tells a dashboard what to re-read."""
