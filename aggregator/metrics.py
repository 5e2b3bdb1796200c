"""The aggregator's metrics, named for what an SRE asks: how fast and how
well each company answers, whether its circuit is open, how much work is
waiting, and how old the oldest unfinished query is (the 48-hour risk)."""
from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    def __init__(self) -> None:
        meter = metrics.get_meter("yztc.aggregator")
        self._latency = meter.create_histogram(
            "yztc.company.call.duration", unit="s", description="Company connector call latency",
            # Calls take milliseconds to seconds; the SDK's default buckets start at 5 s steps.
            explicit_bucket_boundaries_advisory=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        )
        self._errors = meter.create_counter(
            "yztc.company.call.errors", description="Failed company calls, by gRPC code"
        )
        self._finished = meter.create_counter(
            "yztc.queries.finished", description="Queries finished, by status"
        )
        self.backlog = 0
        self.oldest_age_seconds = 0.0
        self._circuits: dict[str, callable] = {}
        meter.create_observable_gauge(
            "yztc.queries.backlog", [self._observe_backlog], description="Queries not yet finished"
        )
        meter.create_observable_gauge(
            "yztc.queries.oldest_unfinished_age", [self._observe_oldest], unit="s",
            description="Age of the oldest unfinished query",
        )
        meter.create_observable_gauge(
            "yztc.company.circuit_state", [self._observe_circuits],
            description="Circuit breaker per company: 0 closed, 1 half-open, 2 open",
        )

    def company_call(self, company: str, seconds: float, outcome: str) -> None:
        self._latency.record(seconds, {"company": company, "outcome": outcome})
        if outcome != "OK":
            self._errors.add(1, {"company": company, "code": outcome})

    def query_finished(self, status: str) -> None:
        self._finished.add(1, {"status": status})

    def watch_circuit(self, company: str, state) -> None:
        self._circuits[company] = state

    def _observe_backlog(self, options: CallbackOptions):
        yield Observation(self.backlog)

    def _observe_oldest(self, options: CallbackOptions):
        yield Observation(self.oldest_age_seconds)

    def _observe_circuits(self, options: CallbackOptions):
        for company, state in self._circuits.items():
            yield Observation(CIRCUIT_VALUES[state()], {"company": company})
