"""The notifier's metrics, named for what an SRE asks: how many messages wait
and how long the oldest has waited (the 48-hour promise), how fast parts go
out, how long a Send takes to get a message to the SMS centre (the person
waiting for a verification code), why messages fail, how long receipts take,
whether we are bound to the SMS centre, and whether we reach the database.
Instruments come from the OpenTelemetry API; where they are exported to is
set up once per process (yztc.telemetry)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from sms_notifier import receipts, smpp_status
from yztc import cmpp
from yztc.database_up import DatabaseUp

# The aggregator's message ids: "code:<event id>" and "result:<query id>".
MESSAGE_KINDS = frozenset({"code", "result"})

# Failure reasons a label may carry (L5: never what a centre wrote): SMPP
# command_status names, CMPP Result names, a receipt's state among the fixed
# set, and the notifier's own words; anything else is "other".
_OWN_REASONS = frozenset(
    {"not_bound", "deadline", "connection_lost", "no message id", "message id too long", "no receipt", "unreadable"}
)
REASONS = (
    frozenset(smpp_status.NAMES.values())
    | frozenset(cmpp.RESULT_NAMES.values())
    | frozenset(f"receipt {stat}" for stat in receipts.STAT_LABELS)
    | _OWN_REASONS
    | {"gave_up", "other"}
)


def reason_label(reason: str) -> str:
    """A failure reason as a bounded metric label."""
    if reason in REASONS:
        return reason
    if reason.startswith("gave up after"):
        return "gave_up"
    if reason.startswith("unreadable"):
        return "unreadable"
    if reason.startswith("receipt "):
        return f"receipt {receipts.stat_label(reason.removeprefix('receipt '))}"
    return "other"


class Metrics:
    def __init__(self, provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter("yztc.sms_notifier", meter_provider=provider)
        self.queue_depth = 0
        self.oldest_pending_age_seconds = 0.0
        self.bound = False
        meter.create_observable_gauge(
            "yztc.sms.queue.depth",
            [self._observe_depth],
            description="Messages accepted and not yet submitted (PENDING)",
        )
        meter.create_observable_gauge(
            "yztc.sms.queue.oldest_pending_age",
            [self._observe_oldest],
            unit="s",
            description="Age of the oldest PENDING message",
        )
        meter.create_observable_gauge(
            "yztc.sms.smsc.bound",
            [self._observe_bound],
            description="1 while this replica is bound to the SMS centre",
        )
        self._submits = meter.create_counter(
            "yztc.sms.submits",
            unit="{part}",
            description="submit_sm sent, by outcome (accepted, transient, permanent, connection_lost)",
        )
        self._sent = meter.create_counter(
            "yztc.sms.messages.sent", unit="{message}", description="Messages with every part accepted"
        )
        self._failures = meter.create_counter(
            "yztc.sms.failures",
            unit="{event}",
            description="Failed submissions by reason (e.g. ESME_RTHROTTLED) and whether the message failed for good",
        )
        self._finished = meter.create_counter(
            "yztc.sms.messages.finished", unit="{message}", description="Messages DELIVERED or FAILED"
        )
        self._receipt_latency = meter.create_histogram(
            "yztc.sms.receipt.latency",
            unit="s",
            description="From every part accepted (SENT) to the final delivery receipt",
        )
        self._send_duration = meter.create_histogram(
            "yztc.sms.send.duration",
            unit="s",
            description="A Send that pushes a message: from its arrival to its answer, by kind (code, result, "
            "other: the message id's prefix) and state (SENT: every part accepted by the SMS centre; "
            "PENDING: left to the queue; FAILED)",
            # Pushes end within push_seconds (2 s by default); the default buckets start at 5 s steps.
            # Floats: the exporter writes le="2.0", which the alert rules compare against.
            explicit_bucket_boundaries_advisory=[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0],
        )
        self._receipts_unmatched = meter.create_counter(
            "yztc.sms.receipts.unmatched",
            unit="{receipt}",
            description="Receipts not applied, by why (stale: about an earlier or settled submission; "
            "dropped: too many unknown ids kept aside this hour)",
        )
        self._receipt_queries = meter.create_counter(
            "yztc.sms.receipt.queries",
            unit="{part}",
            description="Parts asked about (query_sm) when their receipt window closed, by answer",
        )
        self._database = DatabaseUp(meter)

    def submitted(self, outcome: str) -> None:
        self._submits.add(1, {"outcome": outcome})

    def failure(self, reason: str, final: bool) -> None:
        self._failures.add(1, {"reason": reason_label(reason), "final": final})

    def receipt_unmatched(self, why: str) -> None:
        """A receipt not applied: `stale` (its id names only settled or later
        submissions), `dropped` (this replica kept its share aside already)."""
        self._receipts_unmatched.add(1, {"why": why if why in ("stale", "dropped") else "other"})

    def receipt_queried(self, stat: str | None) -> None:
        """A part asked about at its receipt window's close (query_sm), by answer."""
        self._receipt_queries.add(1, {"answer": receipts.stat_label(stat) if stat else "none"})

    def sent(self) -> None:
        self._sent.add(1)

    def finished(self, state: str) -> None:
        self._finished.add(1, {"state": state})

    def receipt_latency(self, seconds: float, state: str) -> None:
        self._receipt_latency.record(seconds, {"state": state})

    def pushed(self, message_id: str, seconds: float, state: str) -> None:
        """A push ended after `seconds` in `state`; only the id's prefix
        ("code:<event>", "result:<query>") becomes a label."""
        prefix = message_id.partition(":")[0]
        kind = prefix if prefix in MESSAGE_KINDS else "other"
        self._send_duration.record(seconds, {"kind": kind, "state": state})

    def database_probe(self, ping: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        """`ping`, setting `yztc.database.up` from each outcome (yztc.database_up)."""
        return self._database.probe(ping)

    def _observe_depth(self, options: CallbackOptions):
        yield Observation(self.queue_depth)

    def _observe_oldest(self, options: CallbackOptions):
        yield Observation(self.oldest_pending_age_seconds)

    def _observe_bound(self, options: CallbackOptions):
        yield Observation(1 if self.bound else 0)
