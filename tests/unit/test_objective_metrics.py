"""The metrics the service-level objectives are measured by
(docs/runbook.md, "Service-level objectives and alerts"): the result SMS
against its deliver_by and its delay, the Send duration by kind, whether the
database answers (certificate expiry: test_certificate_expiry.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aggregator.metrics import Metrics as AggregatorMetrics
from aggregator.metrics import result_sms_outcome
from sms_notifier.metrics import Metrics as NotifierMetrics

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
DELIVER_BY = T0 + dt.timedelta(hours=48)


def collected(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        m.name: list(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }


@pytest.mark.parametrize(
    ("state", "at", "outcome"),
    [
        ("SENT", T0 + dt.timedelta(seconds=3), "on_time"),
        ("DELIVERED", DELIVER_BY, "on_time"),  # at deliver_by is still by it
        ("SENT", DELIVER_BY + dt.timedelta(seconds=1), "late"),
        ("PENDING", T0 + dt.timedelta(seconds=3), "queued"),
        ("FAILED", T0 + dt.timedelta(seconds=3), "failed"),
    ],
)
def test_result_sms_outcome(state: str, at: dt.datetime, outcome: str) -> None:
    assert result_sms_outcome(state, at, DELIVER_BY) == outcome


def test_a_result_sms_hand_over_is_counted_and_timed() -> None:
    reader = InMemoryMetricReader()
    metrics = AggregatorMetrics(MeterProvider(metric_readers=[reader]))
    metrics.result_sms_handed_over("COMPLETED", "SENT", T0, DELIVER_BY, T0 + dt.timedelta(seconds=4))
    metrics.result_sms_handed_over("PARTIAL", "PENDING", T0, DELIVER_BY, T0 + dt.timedelta(hours=47))
    found = collected(reader)
    assert sorted((p.attributes["outcome"], p.value) for p in found["yztc.queries.result_sms"]) == [
        ("on_time", 1),
        ("queued", 1),
    ]
    delays = {(p.attributes["status"], p.attributes["sms_state"]): p for p in found["yztc.queries.result_sms.delay"]}
    assert delays[("COMPLETED", "SENT")].sum == 4 and delays[("PARTIAL", "PENDING")].sum == 47 * 3600
    # The objectives compare against these bounds (deploy/k8s/base/alerts.rules.yaml).
    assert 300.0 in delays[("COMPLETED", "SENT")].explicit_bounds
    assert 172800.0 in delays[("COMPLETED", "SENT")].explicit_bounds


@pytest.mark.parametrize("kind", ("aggregator", "notifier"))
def test_the_database_probe_follows_each_ping(kind: str) -> None:
    reader = InMemoryMetricReader()
    metrics = (AggregatorMetrics if kind == "aggregator" else NotifierMetrics)(MeterProvider(metric_readers=[reader]))
    outcomes = iter([None, ConnectionError("away"), "slow", None])

    async def ping() -> None:
        outcome = next(outcomes)
        if outcome == "slow":
            await asyncio.sleep(10)
        elif outcome is not None:
            raise outcome

    probe = metrics.database_probe(ping)

    async def run() -> list[int]:
        seen = []
        for _ in range(4):
            try:
                await asyncio.wait_for(probe(), timeout=0.05)
            except (ConnectionError, TimeoutError):
                pass
            seen.append(collected(reader)["yztc.database.up"][0].value)
        return seen

    assert asyncio.run(run()) == [1, 0, 0, 1]


def test_send_duration_by_kind_never_carries_the_id() -> None:
    reader = InMemoryMetricReader()
    metrics = NotifierMetrics(MeterProvider(metric_readers=[reader]))
    metrics.pushed("code:5f0c2d7e9a", 0.12, "SENT")
    metrics.pushed("result:q-8d1e", 1.5, "PENDING")
    metrics.pushed("13800138000", 0.2, "FAILED")
    points = collected(reader)["yztc.sms.send.duration"]
    assert sorted((p.attributes["kind"], p.attributes["state"], p.sum) for p in points) == [
        ("code", "SENT", 0.12),
        ("other", "FAILED", 0.2),
        ("result", "PENDING", 1.5),
    ]
    assert 2.0 in points[0].explicit_bounds


def test_documents_under_previous_hash_keys_are_a_gauge_per_key_id_and_collection() -> None:
    """What step 3 of the runbook's key rotation waits for ("Keyed-hash keys")."""
    reader = InMemoryMetricReader()
    metrics = AggregatorMetrics(MeterProvider(metric_readers=[reader]))
    assert "yztc.hash_key.previous.documents" not in collected(reader)  # no rotation: no sample
    metrics.under_previous_hash_keys = {("h1", "phones"): 3, ("h1", "queries"): 0}
    points = collected(reader)["yztc.hash_key.previous.documents"]
    assert sorted((p.attributes["key_id"], p.attributes["collection"], p.value) for p in points) == [
        ("h1", "phones", 3),
        ("h1", "queries", 0),
    ]
