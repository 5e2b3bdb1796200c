"""How much each measurement does: the full run of `make bench` (30-45
minutes on 2 cores, most of it making the 20,000 open queries of the
backlog measurement: 2,000 took 3 minutes at load average 10) and the smoke run of `make test` (the same code paths,
tiny loads, no meaningful figures)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # Ceilings: seconds per bare measurement.
    ceiling_seconds: float
    # Calls in flight per load-client process (the issue: throughput stops
    # rising at about 16 per process; 32 keeps the server side busy).
    concurrency: int
    # Accept: offered loads (queries/s, open loop), seconds at each, and a
    # closed-loop peak run with this many prepared queries at most.
    accept_loads: tuple[float, ...]
    accept_level_seconds: float
    accept_peak_seconds: float
    accept_peak_queries: int
    # End to end: queries accepted -> result SMS (the issue asks >= 2,000).
    e2e_queries: int
    # Fan-out overhead: queries at a low rate, so none waits behind another.
    fanout_queries: int
    fanout_rate: float
    # Isolation: queries per throughput run, probe queries per latency run.
    isolation_queries: int
    isolation_probes: int
    probe_rate: float
    # Database round trips: queries counted on a stack behind the counting
    # proxy, closed loop; then queries one at a time for the round trips
    # between the last company answer and the result SMS.
    db_queries: int
    sequential_queries: int
    # SMS over each protocol (sms_protocols.py): queries per protocol through
    # the stack, and messages the link alone sends (the ceiling).
    sms_queries: int
    sms_link_messages: int
    # Seconds the stack is watched at rest (CPU and database commands a second).
    idle_seconds: float
    # Backlog cost: open queries made with one company down, and the queries
    # measured with and without them.
    backlog_open: int
    backlog_queries: int
    # Full runs count database commands on a second stack of their own, so
    # the proxy's CPU never touches the timed figures; the smoke run uses one.
    separate_count_stack: bool
    # Seconds the stack idles before "memory at rest" is read.
    settle_seconds: float

    @property
    def phones_needed(self) -> int:
        """Every query needs a phone of its own (one query per phone per 24 h)."""
        accept = int(sum(load * self.accept_level_seconds for load in self.accept_loads)) + self.accept_peak_queries
        return (
            2 * accept
            + self.e2e_queries
            + self.fanout_queries
            + 2 * (self.isolation_queries + self.isolation_probes)
            + self.db_queries
            + self.sequential_queries
            + 2 * self.sms_queries  # SMPP, then CMPP
            + self.backlog_open
            + 2 * self.backlog_queries
            + 100  # spare: a load level rounds up, a retry takes another
        )


FULL = Profile(
    name="full",
    ceiling_seconds=5.0,
    concurrency=32,
    accept_loads=(25.0, 50.0, 100.0, 200.0),
    accept_level_seconds=2.0,
    accept_peak_seconds=4.0,
    accept_peak_queries=800,
    e2e_queries=2000,
    fanout_queries=40,
    fanout_rate=4.0,
    isolation_queries=500,
    isolation_probes=20,
    probe_rate=5.0,
    db_queries=300,
    sequential_queries=20,
    sms_queries=300,
    sms_link_messages=1000,
    idle_seconds=10.0,
    backlog_open=20_000,
    backlog_queries=500,
    separate_count_stack=True,
    settle_seconds=3.0,
)

SMOKE = Profile(
    name="smoke",
    ceiling_seconds=0.5,
    concurrency=8,
    accept_loads=(10.0,),
    accept_level_seconds=0.5,
    accept_peak_seconds=0.5,
    accept_peak_queries=8,
    e2e_queries=12,
    fanout_queries=3,
    fanout_rate=10.0,
    isolation_queries=6,
    isolation_probes=2,
    probe_rate=10.0,
    db_queries=4,
    sequential_queries=2,
    sms_queries=3,
    sms_link_messages=6,
    idle_seconds=1.0,
    backlog_open=50,
    backlog_queries=6,
    separate_count_stack=False,
    settle_seconds=0.5,
)
