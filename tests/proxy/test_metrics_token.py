"""/metrics in production is for the scraper holding CRABGLAMP_METRICS_TOKEN, not for anyone
who reaches the port."""

from __future__ import annotations

from dataclasses import replace

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import serve, settings_for

TOKEN = "scrape-7f3c9d1e-metrics"


async def _scrape(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.get("/metrics", headers=headers)


async def test_production_closes_metrics_without_a_token(engine: AsyncEngine, db_url: str) -> None:
    async with serve(engine, settings_for(db_url, production=True)) as client:
        for headers in ({}, {"Authorization": "Bearer anything"}):
            response = await _scrape(client, **headers)
            assert response.status_code == 403
            assert "CRABGLAMP_METRICS_TOKEN" in response.text
            assert "crabglamp_" not in response.text


async def test_with_a_token_only_its_bearer_scrapes(engine: AsyncEngine, db_url: str) -> None:
    for production in (True, False):
        settings = replace(settings_for(db_url, production=production), metrics_token=TOKEN)
        async with serve(engine, settings) as client:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Bearer {TOKEN}x"},
                {"Authorization": f"Basic {TOKEN}"},
            ):
                refused = await _scrape(client, **headers)
                assert refused.status_code == 401, (production, headers)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert "crabglamp_" not in refused.text
            scraped = await _scrape(client, Authorization=f"Bearer {TOKEN}")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert "# TYPE crabglamp_proxy_requests_total counter" in scraped.text
