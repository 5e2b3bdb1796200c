"""The notifier's settings fail fast on what cannot work, and its metrics
are OpenTelemetry instruments named for what an SRE asks."""

from __future__ import annotations

import base64

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import ValidationError

from sms_notifier.metrics import Metrics
from sms_notifier.settings import NotifierSettings

KEY = base64.b64encode(bytes(32)).decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in ("YZTC_NOTIFIER_PASSWORD", "YZTC_NOTIFIER_DATA_KEY", "YZTC_NOTIFIER_PREVIOUS_DATA_KEYS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_contract_s(env):
    env.setenv("YZTC_NOTIFIER_PASSWORD", "secret")
    env.setenv("YZTC_NOTIFIER_DATA_KEY", KEY)
    settings = NotifierSettings()
    assert (settings.source_addr, settings.source_addr_ton, settings.source_addr_npi) == ("10699000", 3, 0)
    assert settings.data_keys() == {"k1": bytes(32)}
    assert "secret" not in settings.describe() and KEY not in settings.describe()


@pytest.mark.parametrize(
    "name,value",
    [
        ("YZTC_NOTIFIER_PASSWORD", "longer-than-8"),
        ("YZTC_NOTIFIER_DATA_KEY", base64.b64encode(b"x" * 16).decode()),
        ("YZTC_NOTIFIER_PREVIOUS_DATA_KEYS", "[1]"),
        ("YZTC_NOTIFIER_WINDOW", "0"),
    ],
)
def test_bad_values_stop_start_up(env, name, value):
    env.setenv("YZTC_NOTIFIER_PASSWORD", "secret")
    env.setenv("YZTC_NOTIFIER_DATA_KEY", KEY)
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        NotifierSettings()


def test_missing_password_or_key_stops_start_up(env):
    with pytest.raises(ValidationError) as caught:
        NotifierSettings()
    assert {e["loc"][0] for e in caught.value.errors()} >= {"password", "data_key"}


def test_metrics():
    reader = InMemoryMetricReader()
    metrics = Metrics(MeterProvider(metric_readers=[reader]))
    metrics.queue_depth, metrics.oldest_pending_age_seconds, metrics.bound = 7, 12.5, True
    metrics.submitted("accepted")
    metrics.failure("ESME_RTHROTTLED", final=False)
    metrics.failure("ESME_RINVDSTADR", final=True)
    metrics.receipt_latency(1.5, "DELIVERED")
    found = {
        m.name: m.data.data_points
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert [p.value for p in found["yztc.sms.queue.depth"]] == [7]
    assert [p.value for p in found["yztc.sms.queue.oldest_pending_age"]] == [12.5]
    assert [p.value for p in found["yztc.sms.smsc.bound"]] == [1]
    assert [(dict(p.attributes), p.value) for p in found["yztc.sms.submits"]] == [({"outcome": "accepted"}, 1)]
    assert {p.attributes["reason"] for p in found["yztc.sms.failures"]} == {"ESME_RTHROTTLED", "ESME_RINVDSTADR"}
    [latency] = found["yztc.sms.receipt.latency"]
    assert latency.count == 1 and latency.sum == 1.5
