"""Settings: every variable is read by `Settings.from_env`, reaches its field, and is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crabglamp.settings import AlertSettings, BillingSettings, Settings, Thresholds

README = Path(__file__).parent.parent / "README.md"


def test_every_variable_from_env_reads_is_in_the_readme_configuration_table() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Configuration") :]
    table = table[: table.index("\n## ", 1)]
    names = Settings.env_names()
    assert "DATABASE_URL" in names and "CRABGLAMP_ANOMALY_SPIKE_PEAK_RATIO" in names
    missing = [name for name in names if f"`{name}`" not in table]
    assert missing == []


def test_the_names_are_the_ones_from_env_reads() -> None:
    # Every name set to a distinctive value changes exactly one field from its default.
    names = Settings.env_names()
    assert len(names) == len(set(names))
    defaults = Settings()
    for name in names:
        value = {"DATABASE_URL": "sqlite:///elsewhere.db", "CLERK_AUTHORIZED_PARTIES": "a,b"}.get(
            name,
            "0"
            if name == "CRABGLAMP_BACKGROUND"
            else (
                "1" if name in {"CRABGLAMP_PRODUCTION", "CRABGLAMP_WEBHOOK_ALLOW_PRIVATE"} else "13"
            ),
        )
        assert Settings.from_env({name: value}) != defaults, name


def test_the_jobs_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CRABGLAMP_BACKGROUND": "off",
            "CRABGLAMP_WATCH_INTERVAL_SECONDS": "0.5",
            "CRABGLAMP_ALERT_MAX_ATTEMPTS": "3",
            "CRABGLAMP_BILLING_SINK_URL": "https://billing.example/hook",
            "CRABGLAMP_BILLING_BATCH": "10",
            "CRABGLAMP_ANOMALY_CAP_PROJECTION_RATIO": "0.9",
            "CLERK_PUBLISHABLE_KEY": " pk_test_x ",
        }
    )
    assert settings.background is False and settings.watch_interval_seconds == 0.5
    assert settings.alerts == AlertSettings(max_attempts=3)
    assert settings.billing == BillingSettings(sink_url="https://billing.example/hook", batch=10)
    assert settings.thresholds == Thresholds(cap_projection_ratio=0.9)
    assert settings.clerk_publishable_key == "pk_test_x"
    assert Settings.from_env({"CRABGLAMP_BACKGROUND": "banana"}).background is True


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("CRABGLAMP_ALERT_BATCH", "many", "CRABGLAMP_ALERT_BATCH must be a number, got 'many'"),
        ("CRABGLAMP_ALERT_BATCH", "0", "CRABGLAMP_ALERT_BATCH must be positive, got '0'"),
        ("CRABGLAMP_BILLING_INTERVAL_SECONDS", "-1", "must be positive, got '-1'"),
        ("CRABGLAMP_WATCH_INTERVAL_SECONDS", "0", "must be positive, got '0'"),
        ("CRABGLAMP_ANOMALY_SPIKE_MAD_FACTOR", "-2", "must not be negative"),
        ("CRABGLAMP_ANOMALY_BASELINE_DAYS", "2.5", "must be a number, got '2.5'"),
    ],
)
def test_a_bad_number_names_its_variable(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.from_env({name: raw})
    assert (
        Settings.from_env({"CRABGLAMP_ANOMALY_SPIKE_MAD_FACTOR": "0"}).thresholds.spike_mad_factor
        == 0
    )
