"""The aggregator's metrics, named for what an SRE asks: how fast and how
well each company answers, whether its circuit is open, how much work is
waiting, how old the oldest unfinished query is (the 48-hour risk), whether
each result SMS went out by its query's `deliver_by` and how long after the
query it went, and whether this replica reaches its database (its TLS
certificates' expiry is yztc.certificate_expiry's, as on every service).
The service-level objectives built on them are in docs/runbook.md
("Service-level objectives and alerts")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from yztc.database_up import DatabaseUp

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}

# The notifier's answer to a result SMS hand-over (engine.SMS_STATES), as it
# counts against the query's deliver_by: submitted means every part accepted
# by the SMS centre.
_SUBMITTED = frozenset({"SENT", "DELIVERED"})
RESULT_SMS_OUTCOMES = ("on_time", "late", "queued", "failed")


def result_sms_outcome(sms_state: str, handed_over_at: dt.datetime, deliver_by: dt.datetime) -> str:
    """How one hand-over counts for the 48-hour promise: `on_time` (the SMS
    centre had every part by `deliver_by`), `late` (after it), `queued`
    (PENDING: in the notifier's queue, not yet submitted; counted against the
    promise, since we cannot know here when it goes), `failed` (FAILED)."""
    if sms_state in _SUBMITTED:
        return "on_time" if handed_over_at <= deliver_by else "late"
    return "failed" if sms_state == "FAILED" else "queued"


class Metrics:
    def __init__(self, provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter("yztc.aggregator", meter_provider=provider)
        self._latency = meter.create_histogram(
            "yztc.company.call.duration",
            unit="s",
            description="Company connector call latency",
            # Calls take milliseconds to seconds; the SDK's default buckets start at 5 s steps.
            explicit_bucket_boundaries_advisory=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        )
        self._errors = meter.create_counter(
            "yztc.company.call.errors", description="Failed company calls, by gRPC code"
        )
        self._finished = meter.create_counter("yztc.queries.finished", description="Queries finished, by status")
        self._result_sms = meter.create_counter(
            "yztc.queries.result_sms",
            unit="{query}",
            description="Result SMS handed to the notifier, by outcome against the query's deliver_by: "
            "on_time, late, queued (not yet submitted), failed",
        )
        self._result_sms_delay = meter.create_histogram(
            "yztc.queries.result_sms.delay",
            unit="s",
            description="From a query's acceptance to the notifier's answer to its result SMS, "
            "by query status (COMPLETED, PARTIAL) and the answer (SENT, DELIVERED, PENDING, FAILED)",
            # Seconds when every company answers at once, up to the 48 hours of the promise.
            # Floats: the exporter writes le="300.0", which the alert rules compare against.
            explicit_bucket_boundaries_advisory=[
                1.0,
                2.0,
                5.0,
                10.0,
                30.0,
                60.0,
                120.0,
                300.0,
                600.0,
                1800.0,
                3600.0,
                14400.0,
                43200.0,
                86400.0,
                144000.0,
                172800.0,
            ],
        )
        self.backlog = 0
        self.oldest_age_seconds = 0.0
        # Documents per (previous hash key id, collection) (Retention.count_previous_keys).
        self.under_previous_hash_keys: dict[tuple[str, str], int] = {}
        self._circuits: dict[str, Callable[[], str]] = {}
        meter.create_observable_gauge(
            "yztc.queries.backlog", [self._observe_backlog], description="Queries not yet finished"
        )
        meter.create_observable_gauge(
            "yztc.queries.oldest_unfinished_age",
            [self._observe_oldest],
            unit="s",
            description="Age of the oldest unfinished query",
        )
        meter.create_observable_gauge(
            "yztc.company.circuit_state",
            [self._observe_circuits],
            description="Circuit breaker per company: 0 closed, 1 half-open, 2 open",
        )
        meter.create_observable_gauge(
            "yztc.hash_key.previous.documents",
            [self._observe_previous_keys],
            unit="{document}",
            description="Documents kept under a hash key other than the current one, by key id and collection "
            "(phones, work, queries): a hash key rotation may drop the key once all are 0 (docs/runbook.md)",
        )
        self._database = DatabaseUp(meter)

    def company_call(self, company: str, seconds: float, outcome: str) -> None:
        self._latency.record(seconds, {"company": company, "outcome": outcome})
        if outcome != "OK":
            self._errors.add(1, {"company": company, "code": outcome})

    def query_finished(self, status: str) -> None:
        self._finished.add(1, {"status": status})

    def result_sms_handed_over(
        self, status: str, sms_state: str, accepted_at: dt.datetime, deliver_by: dt.datetime, now: dt.datetime
    ) -> None:
        """One result SMS the notifier answered for: `status` the query's
        (COMPLETED or PARTIAL), `sms_state` the notifier's answer."""
        self._result_sms.add(1, {"outcome": result_sms_outcome(sms_state, now, deliver_by)})
        self._result_sms_delay.record((now - accepted_at).total_seconds(), {"status": status, "sms_state": sms_state})

    def watch_circuit(self, company: str, state: Callable[[], str]) -> None:
        self._circuits[company] = state

    def database_probe(self, ping: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        """`ping`, setting `yztc.database.up` from each outcome (yztc.database_up)."""
        return self._database.probe(ping)

    def _observe_backlog(self, options: CallbackOptions):
        yield Observation(self.backlog)

    def _observe_oldest(self, options: CallbackOptions):
        yield Observation(self.oldest_age_seconds)

    def _observe_previous_keys(self, options: CallbackOptions):
        for (key_id, collection), count in self.under_previous_hash_keys.items():
            yield Observation(count, {"key_id": key_id, "collection": collection})

    def _observe_circuits(self, options: CallbackOptions):
        for company, state in self._circuits.items():
            yield Observation(CIRCUIT_VALUES[state()], {"company": company})
