"""The send pacer, on a fake clock: never more than the configured rate in
any second (with the guard), slower after a throttle reply, back up after."""

from __future__ import annotations

import asyncio

from sms_notifier.send_rate import SendPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def _max_in_any_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def _sends(pacer: SendPacer, t: FakeTime, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await pacer.acquire()
        times.append(t.now)
    return times


async def test_never_more_than_the_rate_in_any_second_even_with_concurrent_callers():
    t = FakeTime()
    pacer = SendPacer(20, clock=t.clock, sleep=t.sleep)
    times: list[float] = []

    async def caller() -> None:
        for _ in range(25):
            await pacer.acquire()
            times.append(t.now)

    await asyncio.gather(*(caller() for _ in range(4)))
    times.sort()
    assert len(times) == 100 and _max_in_any_second(times) <= 20
    # 21 consecutive submits span more than a second plus the guard.
    assert min(times[i + 20] - times[i] for i in range(len(times) - 20)) >= 1.05 - 1e-9
    assert times[-1] - times[0] < 100 / 20 * 1.06  # and it does not dawdle


async def test_throttled_pauses_halves_then_recovers():
    t = FakeTime()
    pacer = SendPacer(20, pause=1.0, clock=t.clock, sleep=t.sleep)
    await _sends(pacer, t, 5)
    pacer.throttled()
    assert pacer.rate == 10
    before = t.now
    await pacer.acquire()
    assert t.now - before >= 1.0  # paused
    pacer.throttled()
    pacer.throttled()
    pacer.throttled()
    pacer.throttled()
    assert pacer.rate == 1.0  # halved down to the floor
    for _ in range(9):
        pacer.accepted()
    assert pacer.rate == 19.0
    pacer.accepted()
    pacer.accepted()
    assert pacer.rate == 20  # never above the configured rate
