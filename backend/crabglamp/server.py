"""The module uvicorn imports (`crabglamp.server:app`), once per worker process."""

from __future__ import annotations

from crabglamp.app import create_app

app = create_app()
