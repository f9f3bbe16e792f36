"""Upstream configuration (TOML overridden by the environment), the fake upstream as a command,
and the pieces of the estimate. No database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from crabglamp.proxy.estimate import max_input_tokens
from crabglamp.proxy.metrics import Metrics
from crabglamp.proxy.upstreams import DEFAULT_URLS, UpstreamConfigError, load_proxy_config
from proxy_support import fake_upstream_process


def test_the_file_configures_and_the_environment_overrides(tmp_path: Path) -> None:
    config = tmp_path / "upstreams.toml"
    config.write_text(
        """
[proxy]
timeout_seconds = 12.5
default_max_output_tokens = 2048

[providers.openai]
url = "https://openai.internal/v1/"
key = "sk-from-file"

[providers.local]
url = "http://127.0.0.1:9100/v1"
"""
    )
    loaded = load_proxy_config(
        config,
        {
            "CRABGLAMP_UPSTREAM_OPENAI_KEY": "sk-from-env",
            "CRABGLAMP_UPSTREAM_MISTRAL_URL": "http://mistral.internal/v1",
            "CRABGLAMP_UPSTREAM_ANTHROPIC_KEY": "sk-ant",
        },
    )
    assert loaded.timeout_seconds == 12.5 and loaded.default_max_output_tokens == 2048
    openai = loaded.upstream("openai")
    assert openai is not None
    assert (openai.url, openai.key) == ("https://openai.internal/v1", "sk-from-env")
    assert "sk-from-env" not in repr(openai)  # a key never shows up in a log by accident
    local = loaded.upstream("local")
    assert local is not None and (local.url, local.key) == ("http://127.0.0.1:9100/v1", None)
    mistral = loaded.upstream("mistral")
    assert mistral is not None and mistral.url == "http://mistral.internal/v1"
    anthropic = loaded.upstream("anthropic")
    assert anthropic is not None
    assert (anthropic.url, anthropic.key) == (DEFAULT_URLS["anthropic"], "sk-ant")


def test_without_a_file_the_providers_own_endpoints_are_used() -> None:
    loaded = load_proxy_config(None, {})
    assert {name: u.url for name, u in loaded.upstreams.items()} == DEFAULT_URLS
    assert all(u.key is None for u in loaded.upstreams.values())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[proxy]\ntimeout_seconds = -1\n", "positive"),
        ("[proxy]\nspeed = 3\n", "unknown [proxy] option"),
        ("[providers.openai]\nurl = 'ftp://x'\n", "http(s)"),
        ("[providers.openai]\nsecret = 'x'\n", "url and key only"),
        ("[other]\n", "unknown sections"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_clearly(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(UpstreamConfigError, match=re.escape(problem)):
        load_proxy_config(config, {})


def test_a_missing_file_or_a_key_without_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UpstreamConfigError, match="does not exist"):
        load_proxy_config(tmp_path / "nope.toml", {})
    with pytest.raises(UpstreamConfigError, match="CRABGLAMP_UPSTREAM_ACME_URL"):
        load_proxy_config(None, {"CRABGLAMP_UPSTREAM_ACME_KEY": "k"})


def test_the_fake_upstream_runs_as_a_command(tmp_path: Path) -> None:
    with fake_upstream_process(tmp_path / "fake.log") as url:
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "12345678 [fake:output=3]"}],
            },
        )
        failing = httpx.post(
            f"{url}/v1/embeddings", json={"model": "m", "input": "x [fake:status=429]"}
        )
    assert answer.headers["x-fake-upstream"] == "crabglamp-fake-upstream"
    usage = answer.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (6, 3)  # 24 characters / 4
    assert failing.status_code == 429 and failing.json()["error"]["code"] == "fake_failure"
    assert "stand-in" in (tmp_path / "fake.log").read_text()


def test_the_input_bound_never_undercounts_tokens() -> None:
    # A token covers at least one byte of the body; images add their worst case each.
    assert max_input_tokens(1000) == 1000
    assert max_input_tokens(1000, images=2) == 1000 + 2 * 1536


def test_metrics_render_prometheus_text() -> None:
    metrics = Metrics()
    metrics.counter("requests_total", "Requests.", ("route",))
    metrics.histogram("latency_seconds", "Latency.", (0.1, 1.0))
    metrics.inc("requests_total", ('a "quoted"\nroute',))
    metrics.observe("latency_seconds", (), 0.05)
    metrics.observe("latency_seconds", (), 0.5)
    metrics.observe("latency_seconds", (), 5)
    text = metrics.render()
    assert 'requests_total{route="a \\"quoted\\"\\nroute"} 1' in text
    assert "# TYPE latency_seconds histogram" in text
    assert 'latency_seconds_bucket{le="0.1"} 1' in text
    assert 'latency_seconds_bucket{le="1.0"} 2' in text
    assert 'latency_seconds_bucket{le="+Inf"} 3' in text
    assert "latency_seconds_count 3" in text and "latency_seconds_sum 5.55" in text


PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_proxy_core_imports_no_web_framework() -> None:
    core = [
        "crabglamp.keys",
        "crabglamp.key_secrets",
        "crabglamp.proxy.caps",
        "crabglamp.proxy.writer",
        "crabglamp.proxy.upstreams",
        "crabglamp.proxy.metrics",
    ]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *core], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert loaded.isdisjoint({"strawberry", "starlette", "uvicorn", "graphql"})
