"""One pass of the retention job (aggregator.retention.Retention.run_pass):
each step fails alone, so a requester-tagging scan that keeps failing (it
reads every open and recent query) never stops the purge, and personal
fields never outlive their retention because of it."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from aggregator.retention import Retention
from yztc.keyed_hashes import KeyedHasher

NOW = dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)
ROTATING = KeyedHasher({"h2": b"2" * 32, "h1": b"1" * 32}, "h2")


class _Steps(Retention):
    """Retention whose steps only record that they ran, or fail as told."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__(None, dt.timedelta(days=30), None)  # type: ignore[arg-type]
        self.failing = failing
        self.ran: list[str] = []

    async def _do(self, name: str, result):
        self.ran.append(name)
        if name in self.failing:
            raise TimeoutError(name)
        return result

    async def tag_requesters(self, hasher):
        return await self._do("tag", 2)

    async def purge(self, now, batch=500):
        return await self._do("purge", 5)

    async def count_previous_keys(self, hasher):
        return await self._do("count", {("h1", "phones"): 1})


@pytest.mark.parametrize("failing", [set(), {"tag"}, {"tag", "count"}, {"purge"}, {"tag", "purge", "count"}])
async def test_each_step_runs_whatever_the_others_do(failing, caplog):
    steps = _Steps(failing)
    with caplog.at_level(logging.WARNING, logger="aggregator.retention"):
        done = await steps.run_pass(ROTATING, NOW, tag=True)
    assert steps.ran == ["tag", "purge", "count"]
    assert done.tagged == (None if "tag" in failing else 2)
    assert done.purged == (None if "purge" in failing else 5)
    assert done.under_previous_keys == (None if "count" in failing else {("h1", "phones"): 1})
    assert len(caplog.records) == len(failing)
    assert all(r.fields["error"] == "TimeoutError" for r in caplog.records)  # type: ignore[attr-defined]


async def test_tagging_and_counting_only_when_asked():
    steps = _Steps(set())
    done = await steps.run_pass(KeyedHasher({"h1": b"1" * 32}, "h1"), NOW, tag=False)
    assert steps.ran == ["purge"] and done.tagged is None and done.under_previous_keys is None
