"""An Intake over stand-ins, for unit tests of what it does with a query it
reads (GetQuery): only `queries`, the notifier and the hasher are real
enough to use; anything else touched fails the test."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from aggregator.intake import Intake
from yztc.keyed_hashes import KeyedHasher

HASHER = KeyedHasher.development("aggregator")


def intake_over(queries: object, notifier: object = None) -> Intake:
    """An Intake reading queries from `queries` (an object with `async
    get(query_id)`) and asking `notifier` (GetStatus) about result SMS."""
    none = SimpleNamespace()
    return Intake(
        phones=none,
        queries=queries,
        queue=none,
        engine=none,
        links=SimpleNamespace(notifier=notifier) if notifier is not None else none,
        routing=none,
        protector=SimpleNamespace(hasher=HASHER),
        catalogue=[],
        call_timeout=1.0,
        deliver_within=dt.timedelta(hours=48),
        finalize_margin=dt.timedelta(minutes=1),
    )  # type: ignore[arg-type]
