"""Accounts the caller may read, each with its keys, agents, usage and invoice."""
