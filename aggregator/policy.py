"""How the aggregator treats each company, from configuration: concurrency
cap, request rate, call deadline, retries with backoff and jitter, and a
circuit breaker. Pure: the clock and randomness are injected."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class CompanyPolicy:
    max_concurrency: int = 32
    rate_per_second: float = 200.0
    call_timeout_seconds: float = 5.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 600.0
    poll_base_seconds: float = 0.2
    poll_max_seconds: float = 60.0
    breaker_failures: int = 5
    breaker_open_seconds: float = 30.0
    # Queries refused by the open circuit come back at most this many a
    # second (per replica), spread out, not all at the instant it half-opens.
    open_retries_per_second: float = 5.0

    @classmethod
    def from_config(cls, default: dict[str, Any], override: dict[str, Any] | None) -> CompanyPolicy:
        known = {f.name for f in fields(cls)}
        merged = {**default, **(override or {})}
        unknown = set(merged) - known
        if unknown:
            raise ValueError(f"unknown policy settings: {sorted(unknown)}")
        policy = replace(cls(), **merged)
        if (
            policy.max_concurrency < 1
            or policy.rate_per_second <= 0
            or policy.call_timeout_seconds <= 0
            or policy.open_retries_per_second <= 0
        ):
            raise ValueError("policy limits must be positive")
        return policy


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): spreads
    retries of many queries so a recovering company is not hit in lockstep."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)


class RateLimiter:
    """Token bucket: at most `rate` calls a second, bursts up to one second's worth."""

    def __init__(self, rate: float, now: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._at = now

    def wait_time(self, now: float) -> float:
        """Takes a token and returns 0, or returns how long until one is free (taking nothing)."""
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Opens after `failures` consecutive failures; after `open_seconds` lets
    one probe through (half-open); a success closes it, a failure re-opens."""

    def __init__(self, failures: int, open_seconds: float) -> None:
        self._threshold = failures
        self._open_seconds = open_seconds
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    def state(self, now: float) -> str:
        if self._opened_at is None:
            return CLOSED
        if now - self._opened_at >= self._open_seconds:
            return HALF_OPEN
        return OPEN

    def allow(self, now: float) -> bool:
        """May a call go out now? In half-open, only one probe at a time."""
        state = self.state(now)
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_at(self, now: float) -> float:
        """When a call refused now is worth trying again."""
        if self._opened_at is None:
            return now
        if self._probing:  # a probe is out: ask again shortly
            return now + min(1.0, self._open_seconds)
        return max(now, self._opened_at + self._open_seconds)

    def success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._probing = False

    def failure(self, now: float) -> None:
        self._consecutive += 1
        if self._probing or self._consecutive >= self._threshold:
            self._opened_at = now
        self._probing = False


class RefusalSpacing:
    """When to try again a call the open circuit refused: not before the
    circuit would let one through, and one refused call per 1/`rate` seconds
    after the one before. A down company with 20,000 open queries then costs
    `rate` rounds a second, not 20,000 rounds at each probe; once it is back,
    the waiting queries return at that rate (bounded, well inside 48 hours)."""

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate
        self._next = 0.0

    def retry_in(self, now: float, earliest: float) -> float:
        """Seconds from `now`, at least `earliest` seconds."""
        slot = max(self._next, now + earliest)
        self._next = slot + self._gap
        return slot - now

    def reset(self) -> None:
        """The circuit closed: no queue of refused calls any more."""
        self._next = 0.0
