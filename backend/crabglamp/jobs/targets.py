"""Where a webhook may go: never into our own network, unless the settings allow it.

A tenant's alert endpoint is a URL we POST to from inside our network, so a URL naming (or
resolving to) a loopback, private, link-local, unique-local, multicast, unspecified or cloud
metadata address would let a tenant probe or reach what only we should. `WebhookTargets`
(settings.py) says which of these a deployment allows. The check runs twice:

- when an endpoint is configured (`target_problem`), so that the tenant hears why at once;
- when each alert is sent (`PinnedTransport`): the host is resolved once, every address checked,
  and the connection made to the checked address, with the name kept in the Host header and as
  the TLS server name (SNI, and the certificate is verified for it). A name that resolved to a
  public address when configured and to 127.0.0.1 since (DNS rebinding) is refused then.

Numeric hosts are read the way the C library would connect to them: `127.1`, `0x7f000001`,
`2130706433` and `0177.0.0.1` are all 127.0.0.1, and `[::ffff:127.0.0.1]` is too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Final

import httpx

from crabglamp.settings import WebhookTargets

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata (AWS, GCP, Azure, OpenStack; AWS's IPv6 one): refused even when
# private targets are allowed, since they hand out the host's credentials.
METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT_SECONDS: Final = 5.0


class TargetRefused(httpx.TransportError):
    """The webhook's host is (or resolves to) an address the settings do not allow."""


def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host means, in any form the C library accepts; None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c.isalnum() or c == "." for c in host) and host[0].isdigit():
        try:
            # inet_aton reads 127.1, 0x7f000001, 2130706433 and 0177.0.0.1 as getaddrinfo does.
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_problem(address: IPAddress, targets: WebhookTargets) -> str | None:
    """Why a webhook may not connect to this address; None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_problem(embedded, targets)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_loopback:
        return None if targets.allow_loopback else "a loopback address"
    if targets.allow_private:
        return None
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if not address.is_global:
        return "a private address"
    return None


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the name resolves to (tests replace this to play DNS)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
    )
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


async def checked_addresses(host: str, port: int, targets: WebhookTargets) -> list[IPAddress]:
    """The addresses to connect to, all of them allowed; `TargetRefused` when any is not, and
    `httpx.ConnectError` when the name does not resolve."""
    numeric = numeric_host(host)
    if numeric is not None:
        addresses = [numeric]
    elif _is_localhost(host) and not targets.allow_loopback:
        raise TargetRefused(f"the host {host} is a loopback address")
    else:
        try:
            addresses = await resolve_host(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise httpx.ConnectError("the host does not resolve") from exc
        if not addresses:
            raise httpx.ConnectError("the host does not resolve")
    for address in addresses:
        problem = address_problem(address, targets)
        if problem is not None:
            said = "is" if numeric is not None else "resolves to"
            raise TargetRefused(f"the host {host} {said} {problem}")
    return addresses


async def target_problem(url: str, targets: WebhookTargets) -> str | None:
    """Why a webhook URL may not be configured (None: it may). A name that does not resolve
    (yet) is accepted: each send checks again, and nothing unresolved can be reached."""
    parsed = httpx.URL(url)
    try:
        await checked_addresses(parsed.host, parsed.port or _default_port(parsed), targets)
    except TargetRefused as exc:
        return f"{exc}; webhooks may not reach private networks"
    except httpx.ConnectError:
        return None
    return None


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


class PinnedTransport(httpx.AsyncBaseTransport):
    """Connects each request to the address its host was checked to be (see the module)."""

    def __init__(self, targets: WebhookTargets) -> None:
        self.targets = targets
        # No pooled connections: a pool is keyed by address, and two names on one address
        # must not share a TLS connection made for the other's name. Webhooks are few.
        self._inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        addresses = await checked_addresses(
            host, request.url.port or _default_port(request.url), self.targets
        )
        # The Host header was set from the URL's name when the request was built; it stays.
        request.url = request.url.copy_with(host=str(addresses[0]))
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def webhook_client(timeout: float, targets: WebhookTargets) -> httpx.AsyncClient:
    # A webhook that redirects is not followed: the secret's receiver is the URL given, and a
    # redirect could point anywhere.
    return httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, transport=PinnedTransport(targets)
    )
