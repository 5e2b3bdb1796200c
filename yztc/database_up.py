"""`yztc.database.up`, the gauge every service with a database exports: 1
while its health check's database ping succeeds, else 0 (the runbook's
YztcDatabaseUnreachable alert reads it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry.metrics import CallbackOptions, Meter, Observation


class DatabaseUp:
    def __init__(self, meter: Meter) -> None:
        self.up = True
        meter.create_observable_gauge(
            "yztc.database.up",
            [self._observe],
            description="1 while this replica's database ping (the health check's, every 2 s) succeeds",
        )

    def probe(self, ping: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        """`ping` (e.g. the health check's database ping), setting the gauge
        from each outcome; raises what `ping` raises."""

        async def probe() -> None:
            try:
                await ping()
            except BaseException:  # a timeout cancels it: down too
                self.up = False
                raise
            self.up = True

        return probe

    def _observe(self, options: CallbackOptions):
        yield Observation(1 if self.up else 0)
