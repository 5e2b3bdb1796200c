"""The gateway's copy of the enterprise directory: kept for its time, one
refresh at a time, the older copy served while the aggregator is down, and
ETags compared as RFC 9110 says for If-None-Match."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.enterprise_directory import (
    RETRY_AFTER_FAILURE_SECONDS,
    EnterpriseDirectory,
    entity_tag,
    etag_matches,
)
from yztc.errors import ServiceError

LISTING = {"enterprises": [{"id": "tencent", "name": "腾讯", "hotline": "95017", "detail_and_unbind": "…"}]}


class Aggregator:
    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.listing = LISTING

    async def list_enterprises(self) -> dict:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down:
            raise ServiceError("UNAVAILABLE")
        return self.listing


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_kept_for_its_time_then_asked_again():
    aggregator, clock = Aggregator(), Clock()
    directory = EnterpriseDirectory(aggregator.list_enterprises, 60, clock)
    first = await directory.get()
    assert json.loads(first.body) == LISTING
    assert "腾讯".encode() in first.body  # UTF-8, not \u escapes
    assert first.etag == entity_tag(first.body) and first.etag.startswith('"')
    clock.now += 59
    assert await directory.get() is first
    assert aggregator.calls == 1
    clock.now += 1
    aggregator.listing = {"enterprises": []}
    second = await directory.get()
    assert aggregator.calls == 2
    assert second.etag != first.etag


async def test_one_refresh_however_many_wait():
    aggregator = Aggregator()
    directory = EnterpriseDirectory(aggregator.list_enterprises, 60, Clock())
    answers = await asyncio.gather(*(directory.get() for _ in range(50)))
    assert aggregator.calls == 1
    assert len({a.etag for a in answers}) == 1


async def test_without_a_copy_the_aggregator_error_is_the_answer():
    aggregator = Aggregator()
    aggregator.down = True
    with pytest.raises(ServiceError):
        await EnterpriseDirectory(aggregator.list_enterprises, 60, Clock()).get()


async def test_older_copy_served_while_the_aggregator_is_down():
    aggregator, clock = Aggregator(), Clock()
    directory = EnterpriseDirectory(aggregator.list_enterprises, 60, clock)
    first = await directory.get()
    aggregator.down = True
    clock.now += 61
    assert (await directory.get()).etag == first.etag
    assert aggregator.calls == 2
    # Not asked again on every request while it is down.
    clock.now += RETRY_AFTER_FAILURE_SECONDS - 1
    await directory.get()
    assert aggregator.calls == 2
    clock.now += 1
    aggregator.down = False
    await directory.get()
    assert aggregator.calls == 3


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ('"x",W/"abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
    ],
)
def test_if_none_match(header, matches):
    assert etag_matches(header, '"abc"') is matches
