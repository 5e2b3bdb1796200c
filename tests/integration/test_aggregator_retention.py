"""Retention against a real FerretDB: personal fields of final records go
after the retention period while anonymous counters stay; phones and claims
go once they can no longer limit anything; old lease documents go."""

import datetime as dt

import pytest

from aggregator import request_rules
from aggregator.phone_rules import CODE_TTL, Code, Event, Phone, judge_code
from aggregator.phone_store import KEEP_CLAIMS, Committed, PhoneStore
from aggregator.query_store import COMPLETED, DONE, FAILED, PARTIAL, Part, Query, ResultSms
from aggregator.retention import PERSONAL_FIELDS, Retention
from yztc.keyed_hashes import KeyedHasher
from yztc.mongo import connect

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
DAYS = dt.timedelta(days=1)
KEEP = dt.timedelta(days=30)
MS = dt.timedelta(milliseconds=1)


@pytest.fixture
async def db(mongodb_uri):
    client = connect(mongodb_uri, "test")
    yield client.get_default_database()
    await client.close()


def _query(qid: str, created_at: dt.datetime, status: str, parts: dict[str, Part]) -> Query:
    return Query(
        id=qid,
        phone_hash="hash",
        phone_box={"kid": "k1", "ct": "x"},
        phone_masked="138****8000",
        channel="wechat-demo",
        requester_tag="h1.0123456789abcdef0123456789abcdef",
        consent={"at": created_at, "terms_version": "t"},
        trace={"traceparent": "x"},
        created_at=created_at,
        deliver_by=created_at + 2 * DAYS,
        finalize_at=created_at + DAYS,
        companies=parts,
        sms=ResultSms(f"result:{qid}"),
        status=status,
        completed_at=created_at + dt.timedelta(minutes=1),
        open=False,
    )


async def test_personal_fields_go_after_retention_and_counters_stay(db):
    retention = Retention(db, KEEP, PhoneStore(db, "r"))
    await retention.ensure_indexes()
    closed = _query("closed", NOW, PARTIAL, {"tencent": Part(DONE, 3), "douyin": Part(FAILED)})
    other = _query(
        "other", NOW + dt.timedelta(minutes=5), COMPLETED, {"tencent": Part(DONE, 2), "douyin": Part(DONE, 0)}
    )
    recent = _query("recent", NOW + 2 * DAYS, COMPLETED, {"tencent": Part(DONE, 1), "douyin": Part(DONE, 4)})
    await db["queries"].insert_many([q.to_doc() for q in (closed, other, recent)])
    open_ = _query("open", NOW, "IN_PROGRESS", {"tencent": Part()})
    await db["work"].insert_one(open_.to_doc())

    done_at = NOW + dt.timedelta(minutes=1)
    assert await retention.purge(done_at + KEEP - MS) == 0
    assert await retention.purge(done_at + KEEP + dt.timedelta(minutes=5)) == 2
    for qid in ("closed", "other"):
        record = await db["queries"].find_one({"_id": qid})
        assert not set(PERSONAL_FIELDS) & set(record), qid
        assert record["purged_at"] == done_at + KEEP + dt.timedelta(minutes=5)
        assert record["channel"] == "wechat-demo"
    assert (await db["queries"].find_one({"_id": "closed"}))["companies"]["tencent"]["count"] == 3
    kept = await db["queries"].find_one({"_id": "recent"})
    assert all(kept[name] for name in PERSONAL_FIELDS)  # within its retention period
    assert (await db["work"].find_one({"_id": "open"}))["phone_hash"] == "hash"  # open work is not a record

    assert await db["query_stats"].find_one({"_id": "closed"}) == {
        "_id": "closed",
        "day": "2026-11-29",
        "channel": "wechat-demo",
        "status": PARTIAL,
        "companies": {"tencent": 3, "douyin": None},
    }
    assert await retention.daily_counts("2026-11-29") == {
        "tencent": {"answered": 2, "accounts": 5},
        "douyin": {"answered": 1, "accounts": 0},
    }
    assert await retention.daily_counts("2026-12-01") == {}  # "recent" not purged yet
    assert await retention.purge(NOW + 40 * DAYS) == 1  # "recent"; the others once only
    assert await retention.daily_counts("2026-12-01") == {
        "tencent": {"answered": 1, "accounts": 1},
        "douyin": {"answered": 1, "accounts": 4},
    }
    assert await db["query_stats"].count_documents({}) == 3


async def test_phones_and_claims_go_once_they_can_no_longer_limit_anything(db):
    phones = PhoneStore(db, "r")
    retention = Retention(db, KEEP, phones)
    later = NOW + dt.timedelta(hours=2)
    for phone_hash, at in (("old", NOW), ("new", later)):
        outcome = await phones.claim(Phone(phone_hash), Event("wrong", at))
        assert isinstance(outcome, Committed)
        await phones.write(outcome.phone, at)
    await db["claims"].insert_one({"_id": "q:ch|SubmitQuery|1795000000|1", "at": NOW})

    await retention.purge(NOW + KEEP_CLAIMS)  # exactly KEEP_CLAIMS old: kept
    assert await db["phones"].count_documents({}) == 2
    assert await db["claims"].count_documents({}) == 3

    await retention.purge(NOW + KEEP_CLAIMS + MS)
    assert [d["_id"] for d in await db["phones"].find({}).to_list(None)] == ["new"]
    assert [d["_id"] for d in await db["claims"].find({}).to_list(None)] == ["v:new:1"]
    assert await PhoneStore(db, "other").read(["old"]) == Phone("old")

    await retention.purge(later + KEEP_CLAIMS + MS)
    assert await db["phones"].count_documents({}) == 0
    assert await db["claims"].count_documents({}) == 0


async def test_lease_documents_go_after_a_day(db):
    retention = Retention(db, KEEP, PhoneStore(db, "r"))
    await db["leases"].insert_many(
        [{"_id": "q#1", "item": "q", "at": NOW}, {"_id": "q#2", "item": "q", "at": NOW + dt.timedelta(hours=1)}]
    )
    await retention.purge(NOW + dt.timedelta(hours=24) - MS)
    assert await db["leases"].count_documents({}) == 2
    await retention.purge(NOW + dt.timedelta(hours=24))
    assert [d["_id"] for d in await db["leases"].find({}).to_list(None)] == ["q#2"]


async def test_a_phone_whose_last_write_was_lost_is_not_forgotten_before_its_claims(db):
    # A replica claimed version 2 (a new code) and died before writing the
    # document, which stays at version 1, touched at NOW. Once the document
    # and claim 1 are forgotten, a new chain starts at version 1 and meets the
    # old claim 2 at its next change: the 72-hour-old code is folded over the
    # code just sent, and the person's right code is refused.
    phones = PhoneStore(db, "r")
    retention = Retention(db, KEEP, phones)
    old_code = Event("code", NOW, code=Code("c1", "old-1", NOW + CODE_TTL))
    v1 = await phones.claim(Phone("h"), old_code)
    await phones.write(v1.phone, NOW)
    later = NOW + dt.timedelta(hours=2)
    assert isinstance(
        await phones.claim(v1.phone, Event("code", later, code=Code("c2", "old-2", later + CODE_TTL))), Committed
    )  # ...and its document write is lost

    now = NOW + KEEP_CLAIMS + dt.timedelta(hours=1)
    await retention.purge(now)
    phone = await phones.read(["h"])
    fresh = Event("code", now, code=Code("c3", "fresh", now + CODE_TTL))
    while not isinstance(outcome := await phones.claim(phone, fresh), Committed):
        phone = outcome.phone
    phone = outcome.phone
    assert judge_code(phone, "fresh", now) == "right"
    # The person presents the code just sent; the next change is claimed.
    # Whoever wins that version, the state after it still holds that code.
    outcome = await phones.claim(phone, Event("accept", now, query_id="q"))
    assert outcome.phone.code.id == "c3"


async def test_requester_ids_stored_before_tags_become_tags(db):
    """Review L6: a query made before requester ids were kept as keyed tags,
    open or final, gets its tag in place of the id, so its requester still
    reads it and the id itself is gone; one that named nobody stays
    nobody's. A final record made from an open query read before the
    change carries the id through until it is tagged."""
    hasher = KeyedHasher({"h1": b"1" * 32}, "h1")
    retention = Retention(db, KEEP, PhoneStore(db, "r"))
    final = _query("final", NOW, COMPLETED, {}).to_doc() | {"requester_id": "2088000000000001"}
    del final["requester"]
    nobody = final | {"_id": "nobody", "requester_id": ""}
    await db["queries"].insert_many([final, nobody])
    open_ = _query("open", NOW, "IN_PROGRESS", {}).to_doc() | {"requester_id": "2088000000000002"}
    del open_["requester"]
    await db["work"].insert_one(open_)
    carried = Query.from_doc(open_)
    assert carried.requester_tag == "" and carried.to_doc()["requester_id"] == "2088000000000002"
    # The engine tags one it takes over, as the pass below does the stored ones.
    taken_over = Query.from_doc(open_)
    taken_over.tag_requester(hasher)
    assert "requester_id" not in taken_over.to_doc()
    assert taken_over.to_doc()["requester"] == request_rules.requester_tag(hasher, "wechat-demo", "2088000000000002")

    assert await retention.tag_requesters(hasher) == 3
    assert await retention.tag_requesters(hasher) == 0
    for name, qid, requester in (("queries", "final", "2088000000000001"), ("work", "open", "2088000000000002")):
        doc = await db[name].find_one({"_id": qid})
        assert "requester_id" not in doc
        assert doc["requester"] == request_rules.requester_tag(hasher, "wechat-demo", requester)
    assert "requester" not in (doc := await db["queries"].find_one({"_id": "nobody"})) and "requester_id" not in doc


async def test_the_purge_removes_a_requester_id_stored_before_tags(db):
    retention = Retention(db, KEEP, PhoneStore(db, "r"))
    await db["queries"].insert_one(_query("before", NOW, COMPLETED, {}).to_doc() | {"requester_id": "2088000000000003"})
    assert await retention.purge(NOW + KEEP + DAYS) == 1
    record = await db["queries"].find_one({"_id": "before"})
    assert not {"requester", "requester_id"} & set(record)
