"""The aggregator's stores against a real FerretDB: every limit at its
boundary, and exactness under concurrency (FerretDB applies updates as a read
then a write, so these rules rest on unique inserts; the races prove it)."""
import asyncio
import datetime as dt

import pytest

from aggregator.code_store import MAX_WRONG_ATTEMPTS, CodeStore
from aggregator.phone_locks import PhoneLocks
from aggregator.query_store import QueryStore
from aggregator.work_queue import WorkQueue
from yztc.mongo import connect

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


@pytest.fixture
async def db(mongodb_uri):
    client = connect(mongodb_uri, "test")
    db = client.get_default_database()
    for store in (CodeStore(db), QueryStore(db), PhoneLocks(db)):
        await store.ensure_indexes()
    yield db
    await client.close()


async def test_code_is_single_use_even_when_raced(db):
    codes = CodeStore(db)
    await codes.issue("p", "h", NOW)
    outcomes = await asyncio.gather(*(codes.consume("p", "h", NOW) for _ in range(8)))
    assert sorted(outcomes) == ["invalid"] * 7 + ["ok"]


async def test_code_expires_after_five_minutes(db):
    codes = CodeStore(db)
    await codes.issue("p", "h", NOW)
    assert await codes.consume("p", "h", NOW + 300 * S) == "expired"
    await codes.issue("p", "h2", NOW + 300 * S)
    assert await codes.consume("p", "h2", NOW + 599 * S) == "ok"


async def test_sixth_attempt_refused_even_with_the_right_code(db):
    codes = CodeStore(db)
    await codes.issue("p", "h", NOW)
    for _ in range(MAX_WRONG_ATTEMPTS - 1):
        assert await codes.consume("p", "wrong", NOW) == "invalid"
    await codes.issue("q", "h", NOW)  # another phone's code is not affected
    assert await codes.consume("p", "wrong", NOW) == "invalid"  # the 5th wrong one
    assert await codes.consume("p", "h", NOW) == "invalid"
    assert await codes.consume("q", "h", NOW) == "ok"


async def test_wrong_attempts_counted_exactly_when_raced(db):
    codes = CodeStore(db)
    await codes.issue("p", "h", NOW)
    await asyncio.gather(*(codes.consume("p", "wrong", NOW) for _ in range(3)))
    await asyncio.gather(*(codes.consume("p", "wrong", NOW) for _ in range(2)))
    assert await codes.consume("p", "h", NOW) == "invalid"


async def test_send_limits_at_their_boundaries(db):
    codes = CodeStore(db)
    assert await codes.issue("p", "h", NOW) is None
    assert await codes.issue("p", "h", NOW + 59 * S) == NOW + 60 * S  # 2nd within 60 s
    for i in range(1, 5):
        assert await codes.issue("p", "h", NOW + i * 60 * S) is None  # sends 2..5
    sixth = await codes.issue("p", "h", NOW + 300 * S)
    assert sixth == NOW + dt.timedelta(hours=24)  # the 6th in 24 h
    assert await codes.issue("p", "h", NOW + dt.timedelta(hours=24)) is None


async def test_concurrent_sends_issue_exactly_one(db):
    codes = CodeStore(db)
    results = await asyncio.gather(*(codes.issue("p", f"h{i}", NOW) for i in range(10)))
    assert sum(r is None for r in results) == 1


async def test_a_given_back_code_can_be_used_again(db):
    codes = CodeStore(db)
    await codes.issue("p", "h", NOW)
    outcome, code_id = await codes.use("p", "h", NOW)
    assert outcome == "ok"
    await codes.give_back(code_id)
    assert await codes.consume("p", "h", NOW) == "ok"


async def test_lock_lasts_24_hours(db):
    locks = PhoneLocks(db)
    until = await locks.lock("p", NOW)
    assert await locks.locked_until("p", NOW + dt.timedelta(hours=24) - S) == until
    assert await locks.locked_until("p", NOW + dt.timedelta(hours=24)) is None


def _query(seq, qid):
    return dict(
        query_id=qid, seq=seq, phone_hash="p", phone_box={}, phone_masked="x", channel="c",
        requester_id="r", companies=["tencent"], now=NOW, deliver_by=NOW + 100 * S,
        finalize_at=NOW + 90 * S, terms_version="t", trace_carrier={},
    )


async def test_one_query_per_phone_and_seq_under_race(db):
    queries = QueryStore(db)
    results = await asyncio.gather(*(queries.insert(**_query(1, f"q{i}")) for i in range(10)))
    assert sum(results) == 1
    latest = await queries.latest_for_phone("p")
    assert latest["seq"] == 1 and latest["status"] == "IN_PROGRESS"
    assert await queries.get(latest["_id"]) is not None


async def test_only_one_replica_claims_a_query_and_the_loser_is_fenced(db):
    queries = QueryStore(db)
    await queries.insert(**_query(1, "q"))
    await WorkQueue(db, dt.timedelta(seconds=30)).add("q", NOW)
    item = (await WorkQueue(db, dt.timedelta(seconds=30)).due(NOW, 10))[0]
    replicas = [WorkQueue(db, dt.timedelta(seconds=30), owner=f"r{i}") for i in range(10)]
    gens = await asyncio.gather(*(r.claim(dict(item), NOW) for r in replicas))
    assert sorted(g for g in gens if g is not None) == [1]
    assert await replicas[0].due(NOW + 29 * S, 10) == []  # leased: not due elsewhere

    # The lease runs out (the owner died): another replica takes generation 2,
    # and the old owner's writes are refused from then on.
    expired = (await replicas[0].due(NOW + 31 * S, 10))[0]
    assert await replicas[1].claim(expired, NOW + 31 * S) == 2
    assert await replicas[1].write("q", 2, {"status": "COMPLETED"})
    assert not await replicas[0].write("q", 1, {"status": "IN_PROGRESS"})
    await replicas[0].finish("q", 1)  # the stale owner cannot end the work either
    assert len(await replicas[1].due(NOW + 62 * S, 10)) == 1  # still there, leased until +61 s
    await replicas[1].finish("q", 2)
    assert await replicas[1].due(NOW + 62 * S, 10) == []


async def test_a_claimer_that_died_between_its_two_writes_does_not_strand_the_query(db):
    # An aggregator killed after inserting lease document #1 and before moving
    # the item on left the query unclaimable for ever (seen as queries stuck
    # after `kill -9` of the aggregator under load).
    queue = WorkQueue(db, dt.timedelta(seconds=30), owner="alive")
    await queue.add("q", NOW)
    [item] = await queue.due(NOW, 10)
    await db["leases"].insert_one({"_id": "q#1", "item": "q", "owner": "dead", "at": NOW})
    assert await queue.claim(dict(item), NOW + 10 * S) is None  # it might still be alive
    assert await queue.claim(dict(item), NOW + 30 * S) == 2  # a lease later: generation 1 is skipped
    assert await queue.write("q", 2, {"status": "COMPLETED"})
    assert not await queue.write("q", 1, {"status": "IN_PROGRESS"})


async def test_an_item_added_again_after_it_went_can_be_claimed(db):
    # The repair pass gives an open query without an item a new one, starting
    # again at generation 0, while the lease documents of its earlier claims
    # are still kept: they are skipped.
    queue = WorkQueue(db, dt.timedelta(seconds=30), owner="r")
    await queue.add("q", NOW)
    for round_ in range(5):
        [item] = await queue.due(NOW + round_ * 31 * S, 10)
        gen = await queue.claim(dict(item), NOW + round_ * 31 * S)
        assert gen == round_ + 1
    await queue.finish("q", 5)
    later = NOW + 200 * S
    await queue.add("q", later)
    [item] = await queue.due(later, 10)
    assert item["lease_gen"] == 0
    assert await queue.claim(dict(item), later) == 6
    assert await queue.holds("q", 6)


async def test_a_holder_reads_its_fence_only_near_the_end_of_its_lease(db):
    queue = WorkQueue(db, dt.timedelta(seconds=30), owner="r")
    await queue.add("q", NOW)
    [item] = await queue.due(NOW, 10)
    assert await queue.claim(dict(item), NOW) == 1
    # Moved on behind our back (as after a stall): while our lease surely
    # lasts we need not look; near its end we look, and see it.
    await db["work_items"].update_one({"_id": "q"}, {"$set": {"lease_gen": 2}})
    assert await queue.holds("q", 1, NOW + 20 * S)
    assert not await queue.holds("q", 1, NOW + 26 * S)  # within a sixth of a lease of its end
    assert not await queue.write("q", 1, {"status": "X"}, NOW + 1 * S)  # and it is not ours any more
