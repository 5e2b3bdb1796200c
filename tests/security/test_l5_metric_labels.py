"""L5: SMS-centre-controlled input as metric labels.

The review: the notifier labelled failures `f"receipt {stat}"` with the stat
text the centre wrote (`\\w+`), and unknown submit statuses with their hex
value, so the centre decided the label cardinality.

Now every failure label is one of a fixed set (metrics.REASONS): a receipt's
stat outside SMPP's list is counted as "receipt OTHER", an unknown status as
"other". Reproduced with receipts whose stat is random text, through the
receipt parser and the settler, read back from an OpenTelemetry reader."""

from __future__ import annotations

import datetime as dt
import random
import string

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from sms_notifier.message_records import FAILED
from sms_notifier.metrics import REASONS, Metrics
from sms_notifier.receipts import parse
from sms_notifier.settling import Settler


class _NoStore:
    """The settler never reaches the database here: every receipt settles in memory."""


def _labels(reader: InMemoryMetricReader, name: str, key: str) -> set[str]:
    found: set[str] = set()
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found |= {str(p.attributes[key]) for p in metric.data.data_points}
    return found


async def test_random_receipt_stats_and_statuses_become_bounded_labels():
    reader = InMemoryMetricReader()
    metrics = Metrics(MeterProvider(metric_readers=[reader]))
    finals: dict[str, str] = {}
    settler = Settler(
        _NoStore(),  # type: ignore[arg-type]
        metrics,
        now=lambda: dt.datetime.now(dt.UTC),
        on_final=lambda m, state, _reason: finals.__setitem__(m, state),
        in_flight=list,
        wait_for_parts=0.1,
    )
    rng = random.Random(5)
    stats = ["".join(rng.choices(string.ascii_letters + string.digits + "_", k=12)) for _ in range(50)]
    for i, stat in enumerate(stats):
        receipt = parse(0x04, f"id:{i:x} sub:001 dlvrd:000 stat:{stat} err:042 text:".encode(), {})
        assert receipt is not None
        settler.expect(f"code:{i}", f"{i:x}")
        settler.sent(f"code:{i}", [f"{i:x}"], dt.datetime.now(dt.UTC))
        await settler.on_receipt(receipt)
    for status in (0x12345678, 0x0400, 0xFFFF0000):
        metrics.failure(f"0x{status:08X}", final=False)
    metrics.failure("gave up after 0xDEADBEEF", final=True)

    assert set(finals.values()) == {FAILED} and len(finals) == 50  # an unknown stat is a failure
    reasons = _labels(reader, "yztc.sms.failures", "reason")
    assert reasons == {"receipt OTHER", "other", "gave_up"}
    assert reasons <= REASONS
    assert not any(stat in str(reader.get_metrics_data()) for stat in stats)
    for settler_task in list(settler._tasks):
        settler_task.cancel()
