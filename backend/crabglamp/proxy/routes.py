"""The proxy's routes: the one module of the proxy that knows the web framework."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from crabglamp.proxy._asgi import Receive, Scope, Send
from crabglamp.proxy.exchange import ROUTES
from crabglamp.proxy.metrics import Metrics, MetricsEndpoint
from crabglamp.proxy.refusals import Refusal, send_refusal
from crabglamp.proxy.runtime import Proxy


class ProxySlot:
    """The running proxy: the routes exist before the app's lifespan starts it, so they hold this
    slot, which the lifespan fills in and empties."""

    def __init__(self) -> None:
        self.proxy: Proxy | None = None


class ProxyEndpoint:
    def __init__(self, route: str, slot: ProxySlot) -> None:
        self.route = route
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = self.slot.proxy
        if proxy is None:
            refusal = Refusal(
                503, "proxy_unavailable", "The proxy is not running.", kind="server_error"
            )
            await send_refusal(send, refusal, "")
            return
        await proxy.handle(self.route, scope, receive, send)


def proxy_routes(
    slot: ProxySlot, metrics_token: str | None = None, production: bool = False
) -> list[BaseRoute]:
    """`metrics_token`: what a scrape of /metrics must send as its bearer token; in
    `production` without one, /metrics is closed."""

    def find_metrics(_scope: Scope) -> Metrics | None:
        return slot.proxy.metrics if slot.proxy is not None else None

    return [
        *(
            Route(path, ProxyEndpoint(route, slot), methods=["POST"])
            for route, path in ROUTES.items()
        ),
        Route(
            "/metrics",
            MetricsEndpoint(find_metrics, metrics_token, closed=production),
            methods=["GET"],
        ),
    ]
