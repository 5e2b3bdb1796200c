"""The slot-claiming rate limiter against an in-memory store: windows,
boundaries, refusals without the database, other replicas' slots."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.rate_limits import MAX_ROUNDS, Claim, RateLimiter, Slot, window
from gateway.settings import RateLimit
from yztc.errors import ServiceError


class MemoryStore:
    """Unique ids like MongoDB's `_id`, and a log of the round trips made."""

    def __init__(self) -> None:
        self.slots: dict[str, Slot] = {}
        self.inserts: list[list[str]] = []
        self.reads: list[str] = []

    async def insert(self, slots: Sequence[Slot]) -> set[int]:
        self.inserts.append([s.id for s in slots])
        taken = set()
        for i, slot in enumerate(slots):
            if slot.id in self.slots:
                taken.add(i)
            else:
                self.slots[slot.id] = slot
        return taken

    async def taken(self, slot_id: str) -> bool:
        self.reads.append(slot_id)
        return slot_id in self.slots


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _claim(count: int = 3, seconds: int = 60, subject: str = "203.0.113.7", rule: str = "ip_requests") -> Claim:
    return Claim(rule, RateLimit(count=count, seconds=seconds), subject)


async def _refused(limiter: RateLimiter, *claims: Claim) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await limiter.claim(*claims)
    assert caught.value.code == "RATE_LIMITED"
    return caught.value


def test_fixed_window_and_bucket_name():
    claim = _claim(seconds=60)
    first = window(claim, 120.0)
    assert first.ends_at == 180.0
    assert window(claim, 179.999).bucket == first.bucket
    assert window(claim, 180.0).bucket != first.bucket
    # The subject appears only hashed; rule and window length are in the name.
    assert "203.0.113.7" not in first.bucket
    assert first.bucket.startswith("ip_requests:60:2:")
    assert window(_claim(subject="203.0.113.8"), 120.0).bucket != first.bucket
    assert window(_claim(rule="ip_codes"), 120.0).bucket != first.bucket


async def test_allows_exactly_the_limit_then_refuses_until_the_window_ends():
    store, clock = MemoryStore(), Clock(1_800_000_010.0)  # 10 s into a minute window
    limiter = RateLimiter(store, clock)
    for _ in range(3):
        await limiter.claim(_claim())
    error = await _refused(limiter, _claim())
    assert error.retry_after == 50
    clock.now += 49.5
    assert (await _refused(limiter, _claim())).retry_after == 1
    clock.now += 0.5  # the next window
    await limiter.claim(_claim())


async def test_past_the_limit_the_database_is_not_asked():
    store = MemoryStore()
    limiter = RateLimiter(store, Clock())
    for _ in range(3):
        await limiter.claim(_claim())
    trips = len(store.inserts)
    for _ in range(100):
        await _refused(limiter, _claim())
    assert len(store.inserts) == trips and store.reads == []


async def test_all_limits_of_a_request_in_one_round_trip():
    store = MemoryStore()
    limiter = RateLimiter(store, Clock())
    await limiter.claim(_claim(rule="user_requests"), _claim(rule="session_codes"), _claim(rule="ip_codes"))
    assert len(store.inserts) == 1 and len(store.inserts[0]) == 3


async def test_one_exhausted_limit_refuses_before_claiming_the_others():
    store = MemoryStore()
    limiter = RateLimiter(store, Clock())
    await limiter.claim(_claim(count=1, rule="session_codes"))
    await _refused(limiter, _claim(rule="user_requests"), _claim(count=1, rule="session_codes"))
    assert all("user_requests" not in slot for slot in store.slots)


async def test_concurrent_claims_in_one_process_never_collide():
    store = MemoryStore()
    limiter = RateLimiter(store, Clock())
    results = await asyncio.gather(*(limiter.claim(_claim(count=10)) for _ in range(25)), return_exceptions=True)
    assert sum(r is None for r in results) == 10
    assert all(isinstance(r, ServiceError) for r in results if r is not None)
    assert len(store.slots) == 10
    assert len(store.inserts) == 10  # each allowed claim one insert, the rest none


async def test_replicas_share_the_limit():
    store, clock = MemoryStore(), Clock()
    one, two = RateLimiter(store, clock), RateLimiter(store, clock)
    allowed = 0
    for i in range(10):
        try:
            await (one if i % 2 else two).claim(_claim(count=5))
            allowed += 1
        except ServiceError:
            pass
    assert allowed == 5 and len(store.slots) == 5


async def test_a_replica_far_behind_finds_the_first_free_slot():
    store, clock = MemoryStore(), Clock()
    busy, idle = RateLimiter(store, clock), RateLimiter(store, clock)
    await idle.claim(_claim(count=100))
    for _ in range(60):
        await busy.claim(_claim(count=100))
    store.inserts.clear()
    await idle.claim(_claim(count=100))
    assert len(store.slots) == 62
    # Two tries at the hinted slots, then look-ups by _id, then the claim.
    assert len(store.inserts) == 3
    assert len(store.reads) <= 2 * 7
    store.inserts.clear()
    await idle.claim(_claim(count=100))  # caught up: one insert again
    assert len(store.inserts) == 1


async def test_a_replica_behind_an_exhausted_window_is_refused():
    store, clock = MemoryStore(), Clock()
    busy, idle = RateLimiter(store, clock), RateLimiter(store, clock)
    for _ in range(5):
        await busy.claim(_claim(count=5))
    await _refused(idle, _claim(count=5))
    assert len(store.slots) == 5
    store.inserts.clear()
    await _refused(idle, _claim(count=5))  # now known locally
    assert store.inserts == []


class StolenStore(MemoryStore):
    """Another replica always takes the slot just before we insert it."""

    async def insert(self, slots: Sequence[Slot]) -> set[int]:
        for slot in slots:
            self.slots.setdefault(slot.id, slot)
        return await super().insert(slots)


async def test_endless_contention_is_refused_after_a_few_rounds():
    store = StolenStore()
    error = await _refused(RateLimiter(store, Clock()), _claim(count=1000))
    assert error.retry_after == 1
    assert len(store.inserts) == MAX_ROUNDS


async def test_hints_are_bounded():
    store, clock = MemoryStore(), Clock()
    limiter = RateLimiter(store, clock, max_hints=10)
    for i in range(25):
        await limiter.claim(_claim(subject=f"198.51.100.{i}"))
    assert len(limiter._hints) <= 10
    # Dropped hints cost round trips, never correctness.
    for _ in range(2):
        await limiter.claim(_claim(subject="198.51.100.0"))
    await _refused(limiter, _claim(subject="198.51.100.0"))
    assert len(store.slots) == 25 + 2


async def test_slots_expire_after_their_window_and_a_grace():
    store, clock = MemoryStore(), Clock(1_800_000_000.0)
    await RateLimiter(store, clock).claim(_claim(seconds=60))
    [slot] = store.slots.values()
    assert slot.expires_at.timestamp() == 1_800_000_060.0 + 120


async def test_refuse_if_exhausted_asks_and_counts_nothing():
    store = MemoryStore()
    limiter = RateLimiter(store, Clock())
    limiter.refuse_if_exhausted(_claim(count=1))  # unknown: not refused
    await limiter.claim(_claim(count=1))
    with pytest.raises(ServiceError) as caught:
        limiter.refuse_if_exhausted(_claim(count=1))
    assert caught.value.metadata == {"limit": "ip_requests"}
    assert "limit" not in caught.value.to_json()["error"]
    assert len(store.inserts) == 1 and store.reads == []
