"""Retention against a real FerretDB: personal fields go after the retention
period, anonymous per-company counters stay, open queries are untouched."""
import datetime as dt

import pytest

from aggregator.query_store import QueryStore
from aggregator.retention import PERSONAL_FIELDS, Retention
from yztc.mongo import connect

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
DAYS = dt.timedelta(days=1)


@pytest.fixture
async def db(mongodb_uri):
    client = connect(mongodb_uri, "test")
    yield client.get_default_database()
    await client.close()


async def _query(db, qid, seq, open_, counts):
    store = QueryStore(db)
    await store.insert(
        query_id=qid, seq=seq, phone_hash="hash", phone_box={"kid": "k1", "ct": "x"}, phone_masked="138****8000",
        channel="wechat-demo", requester_id="user", companies=list(counts), now=NOW,
        deliver_by=NOW + 2 * DAYS, finalize_at=NOW + DAYS, terms_version="t", trace_carrier={"traceparent": "x"},
    )
    parts = {f"companies.{c}": {"state": "DONE" if n is not None else "PENDING", "count": n, "apps": []}
             for c, n in counts.items()}
    await db["queries"].update_one(
        {"_id": qid}, {"$set": {**parts, "open": open_, "status": "PARTIAL", "completed_at": NOW}}
    )


async def test_personal_fields_go_after_retention_and_counters_stay(db):
    retention = Retention(db, dt.timedelta(days=30))
    await retention.ensure_indexes()
    await _query(db, "closed", 1, False, {"tencent": 3, "douyin": None})
    await _query(db, "open", 2, True, {"tencent": 1, "douyin": None})
    await db["phones"].replace_one({"_id": "hash"}, {"_id": "hash", "seq": 1, "query_id": "closed"})

    assert await retention.purge(NOW + 29 * DAYS) == 0
    assert await retention.purge(NOW + 30 * DAYS) == 1
    closed = await db["queries"].find_one({"_id": "closed"})
    assert not set(PERSONAL_FIELDS) & set(closed)
    assert closed["companies"]["tencent"]["count"] == 3  # anonymous results stay
    assert (await db["queries"].find_one({"_id": "open"}))["phone_hash"] == "hash"
    assert await db["phones"].count_documents({}) == 0
    assert await db["phone_slots"].find_one({"_id": "hash:1"}) is None
    assert await db["phone_slots"].find_one({"_id": "hash:2"}) is not None

    assert await retention.daily_counts(NOW.strftime("%Y-%m-%d")) == {
        "tencent": {"answered": 1, "accounts": 3},
        "douyin": {"answered": 0, "accounts": 0},
    }
    assert await retention.purge(NOW + 31 * DAYS) == 0  # once only


async def test_old_code_events_locks_and_leases_are_forgotten(db):
    await db["code_sends"].insert_one({"_id": "a:1", "phone_hash": "a", "n": 1, "at": NOW})
    await db["phone_locks"].insert_one({"_id": "a", "until": NOW + DAYS})
    await db["leases"].insert_one({"_id": "q#1", "at": NOW})
    await db["channel_slots"].insert_one({"_id": "c|m|1|1", "second": int(NOW.timestamp())})
    retention = Retention(db, dt.timedelta(days=30))
    await retention.purge(NOW + dt.timedelta(hours=23))
    assert await db["code_sends"].count_documents({}) == 1
    await retention.purge(NOW + DAYS)
    for name in ("code_sends", "phone_locks", "leases", "channel_slots"):
        assert await db[name].count_documents({}) == 0, name
