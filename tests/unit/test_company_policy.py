"""The aggregator's per-company policy pieces: backoff with jitter, the
token bucket, the circuit breaker, and the caller that puts them together
(with a stand-in for the connector's stub; the engine tests in tests/e2e
run them against real connector processes)."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from aggregator.company_calls import CompanyCaller
from aggregator.metrics import Metrics
from aggregator.policy import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CompanyPolicy, RateLimiter, backoff


def test_backoff_grows_to_its_cap_with_jitter():
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)]:
        waits = [backoff(attempt, 1.0, 60.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 4  # spread, not lockstep


def test_token_bucket_allows_a_second_of_burst_then_the_rate():
    bucket = RateLimiter(10.0, now=0.0)
    assert [bucket.wait_time(0.0) for _ in range(10)] == [0.0] * 10
    assert bucket.wait_time(0.0) == pytest.approx(0.1)
    assert bucket.wait_time(0.1) == 0.0


def test_breaker_opens_probes_half_open_and_closes():
    breaker = CircuitBreaker(failures=3, open_seconds=10.0)
    for t in (0.0, 1.0):
        breaker.failure(t)
    assert breaker.state(1.0) == CLOSED and breaker.allow(1.0)
    breaker.failure(2.0)
    assert breaker.state(2.0) == OPEN and not breaker.allow(5.0)
    assert breaker.retry_at(5.0) == 12.0
    assert breaker.state(12.0) == HALF_OPEN
    assert breaker.allow(12.0) and not breaker.allow(12.0)  # one probe at a time
    breaker.failure(12.5)  # the probe failed: open again, for a whole period
    assert breaker.state(13.0) == OPEN and breaker.retry_at(13.0) == 22.5
    assert breaker.allow(22.5)
    breaker.success()
    assert breaker.state(22.6) == CLOSED


def test_unknown_policy_settings_are_refused():
    with pytest.raises(ValueError, match="unknown policy settings"):
        CompanyPolicy.from_config({"max_concurrency": 4}, {"max_concurency": 8})


class _Unavailable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")


class DownCompany:
    """The connector's stub, for a company that answers UNAVAILABLE after a while."""

    def __init__(self, latency: float) -> None:
        self.calls = 0
        self._latency = latency

    async def CountAccounts(self, request, timeout, metadata=()):  # noqa: N802 (the stub's name)
        self.calls += 1
        await asyncio.sleep(self._latency)
        raise _Unavailable()


async def test_calls_queued_behind_the_cap_do_not_go_out_once_the_circuit_opens():
    company = DownCompany(latency=0.05)
    policy = CompanyPolicy(max_concurrency=2, breaker_failures=2, breaker_open_seconds=30.0)
    caller = CompanyCaller("douyin", company, policy, Metrics())
    answers = await asyncio.gather(*(caller.ask(f"q{i}", "13800000001", "", 0) for i in range(20)))
    # The first two fail and open the circuit; the 18 queued behind them are
    # refused without a call.
    assert company.calls == 2
    assert sum(a.error == "CIRCUIT_OPEN" for a in answers) == 18
    assert all(a.kind == "retry" for a in answers)


async def test_a_refused_request_is_not_retried_and_does_not_open_the_circuit():
    class Refusing:
        calls = 0

        async def CountAccounts(self, request, timeout, metadata=()):  # noqa: N802
            Refusing.calls += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), grpc.aio.Metadata(), "bad"
            )

    caller = CompanyCaller("jd", Refusing(), CompanyPolicy(breaker_failures=1), Metrics())
    for i in range(3):
        answer = await caller.ask(f"q{i}", "13800000001", "", 0)
        assert answer.kind == "failed" and answer.error == "INVALID_ARGUMENT"
    assert Refusing.calls == 3 and caller.circuit_state() == CLOSED


def test_calls_refused_by_an_open_circuit_come_back_spread_out_not_all_at_once():
    from aggregator.policy import RefusalSpacing

    spacing = RefusalSpacing(rate=5.0)
    # 1,000 queries refused at t=100 while the circuit reopens at t=130.
    waits = [spacing.retry_in(100.0, 30.0) for _ in range(1000)]
    assert waits[0] == 30.0
    assert all(abs((b - a) - 0.2) < 1e-9 for a, b in zip(waits, waits[1:], strict=False))  # one every 0.2 s
    assert abs(waits[-1] - (30.0 + 999 * 0.2)) < 1e-6
    # A later refusal never comes before the queue of earlier ones, nor before the circuit allows.
    assert spacing.retry_in(150.0, 1.0) > waits[-1] - 50.0
    spacing.reset()  # the circuit closed
    assert spacing.retry_in(200.0, 0.0) == 0.0
