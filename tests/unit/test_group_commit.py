"""yztc/group_commit.py without I/O: batches form while a write is in flight,
each caller gets its own outcome, and nothing waits at rest."""
from __future__ import annotations

import asyncio

import pytest

from yztc.group_commit import GroupCommit


class Recording:
    def __init__(self, fail_items: set[int] = frozenset(), raise_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self._fail = fail_items
        self._raise_on = raise_on

    async def write(self, items):
        self.batches.append(list(items))
        await self.release.wait()
        if self._raise_on in items:
            raise ConnectionError("database away")
        return [ValueError(i) if i in self._fail else i * 10 for i in items]


async def test_writes_arriving_while_one_is_in_flight_go_together_next():
    store = Recording()
    group = GroupCommit(store.write)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)  # the first batch goes at once, alone
    later = [asyncio.create_task(group.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    assert store.batches == [[1]]
    store.release.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40, 50, 60]
    assert store.batches == [[1], [2, 3, 4, 5, 6]]


async def test_each_caller_gets_its_own_outcome_and_a_failed_batch_fails_only_its_callers():
    store = Recording(fail_items={3}, raise_on=7)
    store.release.set()
    group = GroupCommit(store.write, max_batch=2)
    results = await asyncio.gather(*(group.submit(i) for i in (2, 3, 4, 7)), return_exceptions=True)
    assert results[0] == 20 and isinstance(results[1], ValueError)  # one item refused, not its batch
    # The batch [4, 7] raised: both its callers see it.
    assert isinstance(results[2], ConnectionError) and isinstance(results[3], ConnectionError)
    assert store.batches == [[2, 3], [4, 7]]


async def test_a_batch_that_raises_fails_every_caller_in_it_and_the_next_batch_still_goes():
    store = Recording(raise_on=1)
    store.release.set()
    group = GroupCommit(store.write, max_batch=1)
    with pytest.raises(ConnectionError):
        await group.submit(1)
    assert await group.submit(2) == 20
