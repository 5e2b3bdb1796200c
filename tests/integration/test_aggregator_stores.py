"""The aggregator's stores against a real FerretDB: single use, one running
query per phone, under concurrency."""
import asyncio
import datetime as dt

import pytest

from aggregator.code_store import MAX_WRONG_ATTEMPTS, CodeStore
from aggregator.query_store import QueryStore
from yztc.mongo import connect

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
async def db(mongodb_uri):
    client = connect(mongodb_uri, "test")
    yield client.get_default_database()
    await client.close()


async def test_code_is_single_use_even_when_raced(db):
    codes = CodeStore(db)
    await codes.ensure_indexes()
    await codes.put("p", "h", NOW)
    outcomes = await asyncio.gather(*(codes.consume("p", "h", NOW) for _ in range(8)))
    assert sorted(outcomes) == ["invalid"] * 7 + ["ok"]


async def test_code_expires_after_five_minutes(db):
    codes = CodeStore(db)
    await codes.put("p", "h", NOW)
    assert await codes.consume("p", "h", NOW + dt.timedelta(minutes=5, seconds=1)) == "expired"


async def test_code_dies_after_too_many_wrong_attempts(db):
    codes = CodeStore(db)
    await codes.put("p", "h", NOW)
    for _ in range(MAX_WRONG_ATTEMPTS):
        assert await codes.consume("p", "wrong", NOW) == "invalid"
    assert await codes.consume("p", "h", NOW) == "invalid"


async def test_one_running_query_per_phone_under_race(db):
    queries = QueryStore(db)
    results = await asyncio.gather(*(queries.claim_phone("p", f"q{i}") for i in range(10)))
    winners = [f"q{i}" for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert all(r == winners[0] for r in results if r is not None)
    await queries.release_phone("p", winners[0])
    assert await queries.claim_phone("p", "next") is None
