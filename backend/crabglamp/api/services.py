"""What every request handler may use, built once per process by the app's lifespan.

The API modules read it from here, never from the app module, so the app composes the API
without the API importing it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from crabglamp.api.auth import Authenticator
from crabglamp.db.changes import ChangeFeed
from crabglamp.db.reads import Reads
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.proxy.runtime import Proxy
from crabglamp.proxy.writer import GroupCommitWriter
from crabglamp.settings import Settings


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    ingestor: Ingestor
    writer: GroupCommitWriter
    authenticator: Authenticator
    # The API's read transactions (on SQLite, on reader threads).
    reads: Reads
    # The metering proxy's runtime: upstream HTTP client, spend caps, reservation sweeper.
    proxy: Proxy | None = None
    # This process's ear on the database for live updates (the usageChanged subscription).
    changes: ChangeFeed | None = None


def services(request: HTTPConnection) -> Services:
    found: Services = request.app.state.services
    return found
