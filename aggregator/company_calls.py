"""One company, called under its policy: concurrency cap, rate limit,
deadline, circuit breaker; failures classified as retryable or not."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from aggregator.metrics import Metrics
from aggregator.policy import CircuitBreaker, CompanyPolicy, RateLimiter, RefusalSpacing, backoff
from yztc import telemetry
from yztc.v1 import company_connector_pb2 as cc_pb2
from yztc.v1 import company_connector_pb2_grpc

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
Outcome = cc_pb2.CountAccountsResponse.Outcome


@dataclass
class Answer:
    """What one call came to. kind: done | accepted | retry | failed."""

    kind: str
    count: int | None = None
    apps: list[dict] = field(default_factory=list)
    ticket: str = ""
    retry_in: float = 0.0
    error: str = ""


class CompanyCaller:
    def __init__(
        self,
        company: str,
        stub: company_connector_pb2_grpc.CompanyConnectorStub,
        policy: CompanyPolicy,
        metrics: Metrics,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.company = company
        self.policy = policy
        self._stub = stub
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._now = monotonic
        self._slots = asyncio.Semaphore(policy.max_concurrency)
        self._rate = RateLimiter(policy.rate_per_second, monotonic())
        self.breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_open_seconds)
        self._refused = RefusalSpacing(policy.open_retries_per_second)

    def circuit_state(self) -> str:
        return self.breaker.state(self._now())

    async def ask(self, query_id: str, phone: str, ticket: str, attempt: int) -> Answer:
        """Count (or poll `ticket`) for one query; `attempt` counts earlier failures."""
        async with self._slots:
            # The circuit is asked once a slot is ours, not before: calls
            # queued behind the cap while the company failed would otherwise
            # all go out after the circuit opened.
            now = self._now()
            if not self.breaker.allow(now):
                wait = self._refused.retry_in(now, self.breaker.retry_at(now) - now)
                return Answer("retry", retry_in=wait, error="CIRCUIT_OPEN")
            while (wait := self._rate.wait_time(self._now())) > 0:
                await asyncio.sleep(wait)
            started = self._now()
            try:
                if ticket:
                    reply = await self._stub.PollCount(
                        cc_pb2.PollCountRequest(query_id=query_id, ticket=ticket),
                        timeout=self.policy.call_timeout_seconds,
                        metadata=telemetry.outgoing_metadata(),
                    )
                else:
                    reply = await self._stub.CountAccounts(
                        cc_pb2.CountAccountsRequest(query_id=query_id, phone=phone),
                        timeout=self.policy.call_timeout_seconds,
                        metadata=telemetry.outgoing_metadata(),
                    )
            except grpc.aio.AioRpcError as error:
                code = error.code()
                self._metrics.company_call(self.company, self._now() - started, code.name)
                if code in RETRYABLE:
                    self.breaker.failure(self._now())
                    delay = backoff(
                        attempt + 1, self.policy.backoff_base_seconds, self.policy.backoff_max_seconds, self._rng
                    )
                    return Answer("retry", retry_in=delay, error=code.name)
                # Not worth repeating (invalid argument, not found...): the
                # company is healthy, the request is not.
                self.breaker.success()
                return Answer("failed", error=code.name)
        self._metrics.company_call(self.company, self._now() - started, "OK")
        self.breaker.success()
        self._refused.reset()
        if reply.outcome == Outcome.OUTCOME_DONE:
            return Answer("done", count=reply.count, apps=[{"name": a.name, "count": a.count} for a in reply.apps])
        return Answer("accepted", ticket=reply.ticket or ticket)
