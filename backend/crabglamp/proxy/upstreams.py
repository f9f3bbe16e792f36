"""Where the proxy forwards to: each provider's base URL and real API key, and the proxy's limits.

A TOML file (`CRABGLAMP_UPSTREAM_CONFIG`) configures them; the environment overrides it per
provider with `CRABGLAMP_UPSTREAM_<PROVIDER>_URL` and `CRABGLAMP_UPSTREAM_<PROVIDER>_KEY`
(provider upper-cased, e.g. OPENAI). Example file:

    [proxy]
    timeout_seconds = 60            # longest wait for the upstream's next bytes
    max_request_seconds = 600       # no request (a stream included) runs longer
    default_max_output_tokens = 4096

    [providers.openai]
    url = "https://api.openai.com/v1"
    key = "sk-..."

Which provider serves a request is named by its model, through the price catalog.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "CRABGLAMP_UPSTREAM_"
_ENV_RE = re.compile(r"^CRABGLAMP_UPSTREAM_([A-Z0-9_]+?)_(URL|KEY)$")

# The providers' own OpenAI-compatible endpoints; used when nothing else is configured.
DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "google": "https://generativelanguage.googleapis.com/v1beta/openai",
    "mistral": "https://api.mistral.ai/v1",
}


class UpstreamConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Upstream:
    provider: str
    url: str
    # Never printed: the dataclass repr leaves it out, and nothing logs it.
    key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    connect_timeout_seconds: float = 5.0
    timeout_seconds: float = 60.0
    max_request_seconds: float = 600.0
    default_max_output_tokens: int = 4096
    max_body_bytes: int = 32 * 1024 * 1024
    sweep_interval_seconds: float = 5.0
    reconcile_interval_seconds: float = 60.0
    # Reservations older than max_request_seconds + this are freed by the sweeper.
    reservation_margin_seconds: float = 30.0
    # A process renews its lease on its reservations this often; on another host, a lease not
    # renewed for lease_ttl_seconds is taken for a process that is gone (lease.py).
    heartbeat_seconds: float = 1.0
    lease_ttl_seconds: float = 10.0
    request_log: bool = True

    def upstream(self, provider: str) -> Upstream | None:
        return self.upstreams.get(provider)


_NUMBERS = {
    f.name: f.type for f in fields(ProxyConfig) if f.name not in {"upstreams", "request_log"}
}


def load_proxy_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> ProxyConfig:
    environ = os.environ if environ is None else environ
    document: dict[str, Any] = {}
    if path:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise UpstreamConfigError(f"upstream config {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise UpstreamConfigError(f"upstream config {path} is not valid TOML: {exc}") from exc
    unknown = set(document) - {"proxy", "providers"}
    if unknown:
        raise UpstreamConfigError(f"unknown sections in {path}: {', '.join(sorted(unknown))}")
    options = _proxy_options(document.get("proxy", {}), path)
    providers: dict[str, dict[str, str]] = {
        name: {"url": url} for name, url in DEFAULT_URLS.items()
    }
    for name, table in document.get("providers", {}).items():
        if not isinstance(table, dict) or set(table) - {"url", "key"}:
            raise UpstreamConfigError(f"[providers.{name}] takes url and key only")
        providers.setdefault(name.lower(), {}).update({k: str(v) for k, v in table.items()})
    for variable, value in environ.items():
        match = _ENV_RE.match(variable)
        if match and value:
            provider = match.group(1).lower()
            providers.setdefault(provider, {})[match.group(2).lower()] = value
    upstreams = {}
    for name, table in providers.items():
        url = table.get("url")
        if not url:
            raise UpstreamConfigError(
                f"provider {name} has a key but no URL (set {ENV_PREFIX}{name.upper()}_URL)"
            )
        if not url.startswith(("http://", "https://")):
            raise UpstreamConfigError(f"provider {name}: url must be http(s)://…, got {url!r}")
        upstreams[name] = Upstream(name, url.rstrip("/"), table.get("key") or None)
    return ProxyConfig(upstreams=upstreams, **options)


def _proxy_options(table: Any, path: str | Path | None) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UpstreamConfigError("[proxy] must be a table")
    options: dict[str, Any] = {}
    for name, value in table.items():
        if name == "request_log":
            if not isinstance(value, bool):
                raise UpstreamConfigError("[proxy] request_log must be true or false")
            options[name] = value
            continue
        kind = _NUMBERS.get(name)
        if kind is None:
            raise UpstreamConfigError(f"unknown [proxy] option {name!r} in {path}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise UpstreamConfigError(f"[proxy] {name} must be a positive number")
        options[name] = int(value) if kind in {"int", int} else float(value)
    return options
