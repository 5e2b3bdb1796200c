"""The aggregator's stores against a real FerretDB: the claim primitive
(yztc/claims.py), the phone store's claim chain, the work queue of open
queries and the final records. FerretDB applies updates as a read then a
write, so exactness rests on unique inserts; the races here prove it."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct

import bson
import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import AutoReconnect

from aggregator.phone_rules import CODE_TTL, Code, Event, LastQuery, Phone, judge_code
from aggregator.phone_store import Committed, Lost, PhoneStore, SlotTaken
from aggregator.query_store import DONE, PARTIAL, Part, Query, QueryStore, Recorder, ResultSms
from aggregator.retention import Retention
from aggregator.work_queue import WorkQueue
from yztc import claims
from yztc.keyed_hashes import KeyedHasher
from yztc.replicas import Replicas

# Milliseconds only: BSON keeps datetimes to the millisecond.
NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
MS = dt.timedelta(milliseconds=1)
LEASE = dt.timedelta(seconds=30)


class CommandLog(monitoring.CommandListener):
    """Every command this client sends, as "<name> <collection>"."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event) -> None:
        target = event.command.get(event.command_name)
        self.commands.append(f"{event.command_name} {target}" if isinstance(target, str) else event.command_name)

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass

    def count(self, label: str) -> int:
        return self.commands.count(label)


@pytest.fixture
async def client_and_log(mongodb_uri):
    log = CommandLog()
    client = AsyncMongoClient(mongodb_uri, tz_aware=True, event_listeners=[log])
    db = client.get_default_database()
    await PhoneStore(db, "setup").ensure_indexes()
    await QueryStore(db).ensure_indexes()
    await WorkQueue(db, Replicas(db, "aggregator", LEASE)).ensure_indexes()
    yield client, log
    await client.close()


@pytest.fixture
def db(client_and_log):
    return client_and_log[0].get_default_database()


@pytest.fixture
def commands(client_and_log) -> CommandLog:
    return client_and_log[1]


# -- yztc/claims.take --------------------------------------------------------------


async def test_take_wins_an_ordered_prefix(db):
    coll = db["claims"]
    assert await claims.take(coll, [{"_id": "x1"}, {"_id": "x2", "nonce": "mine"}]) == claims.Outcome(2, None)
    assert (await coll.find_one({"_id": "x2"}))["nonce"] == "mine"  # a given nonce is kept
    assert (await coll.find_one({"_id": "x1"}))["nonce"]  # else one is made

    outcome = await claims.take(coll, [{"_id": "x3"}, {"_id": "x2"}, {"_id": "x4"}])
    assert outcome == claims.Outcome(1, "x2") and not outcome.all_won
    assert await coll.find_one({"_id": "x3"}) is not None
    assert await coll.find_one({"_id": "x4"}) is None  # the first refused stops the rest
    assert (await coll.find_one({"_id": "x2"}))["nonce"] == "mine"  # the holder's claim untouched

    assert await claims.take(coll, [{"_id": "x1"}]) == claims.Outcome(0, "x1")
    assert await claims.take(coll, [{"_id": "x2"}, {"_id": "x5"}]) == claims.Outcome(0, "x2")
    assert await coll.find_one({"_id": "x5"}) is None


class ReplyDropper:
    """A TCP proxy in front of FerretDB that, when armed, lets one insert into
    `collection` through and then breaks the connection instead of passing
    its reply on: the write happened, the client cannot know (the case a
    nonce exists for: FerretDB has no retryable writes)."""

    def __init__(self, upstream_port: int, collection: str) -> None:
        self._upstream_port = upstream_port
        self._collection = collection
        self.armed = False
        self.inserts = 0
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        watched: set[int] = set()

        async def frames(reader: asyncio.StreamReader):
            while True:
                header = await reader.readexactly(16)
                length, request_id, response_to, op = struct.unpack("<iiii", header)
                yield header + await reader.readexactly(length - 16), request_id, response_to, op

        async def upward() -> None:
            async for frame, request_id, _, op in frames(c_reader):
                if op == 2013 and frame[20] == 0:  # OP_MSG, body section first
                    body = bson.decode(frame[21 : 21 + struct.unpack_from("<i", frame, 21)[0]])
                    if body.get("insert") == self._collection:
                        self.inserts += 1
                        if self.armed:
                            self.armed = False
                            watched.add(request_id)
                s_writer.write(frame)
                await s_writer.drain()

        async def downward() -> None:
            async for frame, _, response_to, _ in frames(s_reader):
                if response_to in watched:
                    self.dropped += 1
                    c_writer.close()
                    s_writer.close()
                    return
                c_writer.write(frame)
                await c_writer.drain()

        tasks = [asyncio.create_task(upward()), asyncio.create_task(downward())]
        self._tasks.update(tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        c_writer.close()
        s_writer.close()


@pytest.fixture
async def dropper_db(mongodb_uri, db):
    """(the database through a ReplyDropper on `claims`, the dropper)."""
    host, _, rest = mongodb_uri.removeprefix("mongodb://").partition("/")
    dropper = ReplyDropper(int(host.rsplit(":", 1)[1]), "claims")
    port = await dropper.start()
    client = AsyncMongoClient(
        f"mongodb://127.0.0.1:{port}/{rest}", tz_aware=True, directConnection=True, serverSelectionTimeoutMS=5000
    )
    yield client.get_default_database(), dropper
    await client.close()
    await dropper.stop()


async def test_a_retried_claim_whose_first_insert_landed_is_recognised_as_ours(dropper_db, db):
    via_proxy, dropper = dropper_db
    dropper.armed = True
    outcome = await claims.take(via_proxy["claims"], [{"_id": "a"}, {"_id": "b"}])
    # The retry met `a` as its own, then `b` (sent on its own) as its own too.
    assert dropper.dropped == 1 and dropper.inserts == 3
    assert outcome == claims.Outcome(2, None)
    assert await db["claims"].count_documents({}) == 2

    # Retried, the claims it had won are its own; the one another writer
    # held stays refused.
    await db["claims"].insert_one({"_id": "d", "nonce": "theirs"})
    dropper.armed = True
    outcome = await claims.take(via_proxy["claims"], [{"_id": "c"}, {"_id": "d"}, {"_id": "e"}])
    assert dropper.dropped == 2
    assert outcome == claims.Outcome(1, "d")
    assert await db["claims"].find_one({"_id": "e"}) is None

    # Without retries, the broken connection is the caller's to handle.
    dropper.armed = True
    with pytest.raises(AutoReconnect):
        await claims.take(via_proxy["claims"], [{"_id": "f"}], retries=0)


# -- phone_store -----------------------------------------------------------------


def _code(code_id: str = "c1", hmac: str = "right", at: dt.datetime = NOW) -> Code:
    return Code(code_id, hmac, at + CODE_TTL)


async def _commit(store: PhoneStore, phone: Phone, make) -> tuple[Phone, int]:
    """As intake does: claim, fold the winner's change on a loss, try again."""
    losses = 0
    while True:
        outcome = await store.claim(phone, make(phone))
        if isinstance(outcome, Committed):
            return outcome.phone, losses
        assert isinstance(outcome, Lost), outcome
        losses += 1
        phone = outcome.phone


async def test_one_claim_wins_a_version_and_the_losers_fold_its_event(db):
    stores = [PhoneStore(db, f"r{i}") for i in range(10)]
    phone = await stores[0].read(["h"])
    assert phone == Phone("h")
    events = [Event("code", NOW + i * MS, code=_code(f"c{i}", f"hmac{i}", NOW + i * MS)) for i in range(10)]
    outcomes = await asyncio.gather(*(s.claim(phone, e) for s, e in zip(stores, events, strict=False)))

    won = [i for i, o in enumerate(outcomes) if isinstance(o, Committed)]
    assert len(won) == 1
    winner = won[0]
    assert all(isinstance(o, Lost) for i, o in enumerate(outcomes) if i != winner)
    committed = outcomes[winner].phone
    assert committed.v == 1 and committed.code == events[winner].code
    for i, outcome in enumerate(outcomes):
        if i != winner:
            assert outcome.rival == events[winner]
            assert outcome.phone == committed
    stored = await db["claims"].find_one({"_id": "v:h:1"})
    assert stored["owner"] == f"r{winner}" and stored["kind"] == "code"
    assert await db["claims"].count_documents({}) == 1


async def test_a_stale_document_still_leads_to_the_right_state(db):
    a, b, c = PhoneStore(db, "a"), PhoneStore(db, "b"), PhoneStore(db, "c")
    v1, _ = await _commit(a, await a.read(["h"]), lambda p: Event("code", NOW, code=_code()))
    await a.write(v1, NOW)
    # b accepts a query with the code and counts a wrong guess, then dies
    # before writing the document: it stays at version 1.
    v2, _ = await _commit(b, v1, lambda p: Event("accept", NOW + S, query_id="q1"))
    v3, _ = await _commit(b, v2, lambda p: Event("wrong", NOW + 2 * S))

    stale = await c.read(["h"])
    assert stale == v1
    assert judge_code(stale, "right", NOW + 3 * S) == "right"  # on the stale state...
    outcome = await c.claim(stale, Event("accept", NOW + 3 * S, query_id="q2"))
    assert isinstance(outcome, Lost) and outcome.rival.query_id == "q1"
    assert judge_code(outcome.phone, "right", NOW + 3 * S) == "used"  # ...and after the fold
    assert outcome.phone == v2

    # A wrong guess from the stale document is counted on top of b's.
    v4, losses = await _commit(c, stale, lambda p: Event("wrong", NOW + 4 * S))
    assert losses == 2
    assert v4.v == 4 and v4.code.failures == 2 and v4.code.used_by == "q1" and v4.last.query_id == "q1"
    await c.write(v4, NOW + 4 * S)

    # Writes landing out of order: b's late write of version 3 replaces 4.
    await b.write(v3, NOW + 2 * S)
    d = PhoneStore(db, "d")  # a replica without c's copy in memory
    assert (await d.read(["h"])).v == 3
    v5, losses = await _commit(d, await d.read(["h"]), lambda p: Event("wrong", NOW + 5 * S))
    assert losses == 1 and v5.v == 5 and v5.code.failures == 3


async def test_a_replica_answers_reads_of_a_phone_it_changed_from_memory_and_stays_right(db, commands):
    a, b = PhoneStore(db, "a"), PhoneStore(db, "b")
    v1, _ = await _commit(a, await a.read(["h"]), lambda p: Event("code", NOW, code=_code()))
    await a.write(v1, NOW)
    commands.commands.clear()
    assert await a.read(["h"]) == v1
    assert commands.count("find phones") == 0  # from memory
    # Another replica changes the phone meanwhile: a's copy is stale, and
    # its next claim meets b's, folds it, and lands on top.
    v2, _ = await _commit(b, await b.read(["h"]), lambda p: Event("wrong", NOW + S))
    stale = await a.read(["h"])
    assert stale == v1
    outcome = await a.claim(stale, Event("wrong", NOW + 2 * S))
    assert isinstance(outcome, Lost) and outcome.phone == v2
    committed = await a.claim(outcome.phone, Event("wrong", NOW + 2 * S))
    assert isinstance(committed, Committed) and committed.phone.code.failures == 2
    # catch_up brings a stale copy level with the claims.
    assert await b.catch_up(v2) == committed.phone


async def test_a_lock_claim_read_back_by_a_loser_carries_its_until(db):
    a, b = PhoneStore(db, "a"), PhoneStore(db, "b")
    phone = Phone("h", v=4, code=_code(), last=LastQuery("q1", NOW), before_last=LastQuery("q0", NOW - S))
    lock = Event("lock", NOW + S, query_id="q1", until=NOW + S + dt.timedelta(hours=24))
    assert isinstance(await a.claim(phone, lock), Committed)
    lost = await b.claim(phone, Event("wrong", NOW + S))
    assert isinstance(lost, Lost) and lost.rival == lock
    assert lost.phone.lock_until == lock.until and lost.phone.last == LastQuery("q0", NOW - S)


def _slot(k: int) -> dict:
    return {"_id": f"q:ch|SubmitQuery|{int(NOW.timestamp())}|{k}", "at": NOW}


async def test_a_quota_slot_sent_first_is_spent_even_when_the_claim_loses(db):
    a, b = PhoneStore(db, "a"), PhoneStore(db, "b")
    phone = Phone("h")
    assert isinstance(await a.claim(phone, Event("wrong", NOW)), Committed)
    outcome = await b.claim(phone, Event("wrong", NOW), [_slot(1)])
    assert isinstance(outcome, Lost)
    assert await db["claims"].find_one({"_id": _slot(1)["_id"]}) is not None

    # Both won: slot and version.
    outcome = await b.claim(outcome.phone, Event("wrong", NOW), [_slot(2)])
    assert isinstance(outcome, Committed) and outcome.phone.v == 2
    assert await db["claims"].find_one({"_id": _slot(2)["_id"]}) is not None


async def test_a_slot_taken_by_another_replica_stops_the_claim(db):
    store = PhoneStore(db, "a")
    await db["claims"].insert_one({**_slot(1), "nonce": "other replica"})
    outcome = await store.claim(Phone("h"), Event("wrong", NOW), [_slot(1)])
    assert outcome == SlotTaken(_slot(1)["_id"])
    assert await db["claims"].find_one({"_id": "v:h:1"}) is None  # the version is still free
    assert isinstance(await store.claim(Phone("h"), Event("wrong", NOW), [_slot(2)]), Committed)


async def test_a_phone_document_round_trips_every_field(db):
    store = PhoneStore(db, "a")
    full = Phone(
        hash="h",
        v=9,
        code=Code("c9", "mac", NOW + CODE_TTL, failures=2, used_by="q7"),
        sends=(NOW - 120 * S, NOW - 60 * S, NOW + 123 * MS),
        lock_until=NOW + dt.timedelta(hours=24),
        last=LastQuery("q7", NOW + 5 * MS),
        before_last=LastQuery("q6", NOW - dt.timedelta(hours=30)),
    )
    await store.write(full, NOW)
    assert await store.read(["h"]) == full
    assert (await db["phones"].find_one({"_id": "h"}))["touched_at"] == NOW

    bare = Phone("h2", v=1, sends=(NOW,))
    await store.write(bare, NOW)
    assert await store.read(["h2"]) == bare
    unused = Phone("h3", v=2, code=Code("c", "mac", NOW + CODE_TTL))
    await store.write(unused, NOW)
    assert await store.read(["h3"]) == unused
    assert await store.read(["nobody"]) == Phone("nobody")


# -- work queue ------------------------------------------------------------------


def _query(qid: str, now: dt.datetime = NOW) -> Query:
    return Query(
        id=qid,
        phone_hash="h",
        phone_box={"kid": "k1", "ct": "x"},
        phone_masked="138****8000",
        channel="wechat-demo",
        requester_tag="h1.0123456789abcdef0123456789abcdef",
        consent={"at": now, "terms_version": "2026-11"},
        trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        created_at=now,
        deliver_by=now + dt.timedelta(hours=48),
        finalize_at=now + dt.timedelta(hours=47),
        companies={
            "tencent": Part(next_at=now),
            "douyin": Part(state=DONE, count=2, apps=[{"name": "抖音", "count": 2}], attempts=1, polls=2),
            "weibo": Part(attempts=3, next_at=now + 7 * S, ticket="t-1", error="UNAVAILABLE"),
        },
        sms=ResultSms(f"result:{qid}"),
    )


class Clock:
    """A replica's two clocks, moved by the test: wall time (heartbeats as
    stored) and monotonic time (how old its own last heartbeat is)."""

    def __init__(self) -> None:
        self.now = NOW
        self.mono = 1000.0

    def advance(self, by: dt.timedelta) -> None:
        self.now += by
        self.mono += by.total_seconds()


async def _replica(db, clock: Clock) -> Replicas:
    replicas = Replicas(db, "aggregator", LEASE, clock=lambda: clock.now, monotonic=lambda: clock.mono)
    await replicas.heartbeat()
    return replicas


async def test_an_owned_query_is_an_orphan_only_once_its_owner_is_gone_and_one_replica_takes_it(db):
    clock = Clock()
    owner_replica = await _replica(db, clock)
    owner = WorkQueue(db, owner_replica)
    assert await owner.add_owned(_query("q").to_doc(), NOW)
    assert not await owner.add_owned(_query("q").to_doc(), NOW)  # the id exists
    stored = await db["work"].find_one({"_id": "q"})
    assert (stored["lease_gen"], stored["owner"]) == (1, owner_replica.owner)
    assert await QueryStore(db).get("q") == _query("q")

    others = [await _replica(db, clock) for _ in range(5)]
    alive = await others[0].alive()
    assert owner_replica.owner in alive
    assert await WorkQueue(db, others[0]).orphans(alive) == []

    # The owner stops beating (killed); a lease later it is an orphan, and of
    # five replicas racing to take it over exactly one wins generation 2.
    clock.advance(LEASE + S)
    for replica in others:
        await replica.heartbeat()
    alive = await others[0].alive()
    assert owner_replica.owner not in alive
    [orphan] = await WorkQueue(db, others[0]).orphans(alive)
    gens = await asyncio.gather(*(WorkQueue(db, r).take_over(dict(orphan), clock.now) for r in others))
    assert sorted(g for g in gens if g is not None) == [2]
    winner = others[gens.index(2)]
    doc = await db["work"].find_one({"_id": "q"})
    assert (doc["lease_gen"], doc["owner"]) == (2, winner.owner)
    assert await WorkQueue(db, others[0]).orphans(await others[0].alive()) == []

    # The old owner, had it only stalled, may no longer write.
    assert not owner.may_write()
    assert not await owner.write("q", 1, {"status": PARTIAL})
    assert not await owner.end_round("q", 1, {"status": PARTIAL}, NOW)
    assert (await db["work"].find_one({"_id": "q"}))["status"] == "IN_PROGRESS"


async def test_a_taker_that_died_between_its_two_writes_does_not_strand_the_query(db):
    clock = Clock()
    gone = await _replica(db, clock)
    assert await WorkQueue(db, gone).add_owned(_query("q").to_doc(), NOW)
    clock.advance(LEASE + S)
    taker = await _replica(db, clock)
    queue = WorkQueue(db, taker)
    [orphan] = await queue.orphans(await taker.alive())
    # Another replica inserted lease #2 and died before moving the query on.
    await db["leases"].insert_one({"_id": "q#2", "item": "q", "owner": "dead", "at": clock.now})
    assert await queue.take_over(dict(orphan), clock.now + 10 * S) is None  # it might still be alive
    assert await queue.take_over(dict(orphan), clock.now + LEASE) == 3  # a lease later: #2 is skipped
    assert (await db["work"].find_one({"_id": "q"}))["owner"] == taker.owner


async def test_an_owner_writes_without_reading_while_its_heartbeat_holds(db, commands):
    clock = Clock()
    replica = await _replica(db, clock)
    queue = WorkQueue(db, replica)
    assert await queue.add_owned(_query("q").to_doc(), NOW)
    commands.commands.clear()
    clock.advance(LEASE * 4 / 5)  # a heartbeat is due every sixth of a lease; several are late
    assert await queue.write("q", 1, {"companies.tencent.attempts": 1})
    assert await queue.end_round("q", 1, {"companies.tencent.attempts": 2}, NOW + 5 * S)
    assert commands.commands == ["update work", "update work"]
    doc = await db["work"].find_one({"_id": "q"})
    assert doc["companies"]["tencent"]["attempts"] == 2 and doc["next_at"] == NOW + 5 * S
    clock.advance(LEASE / 10)  # past five sixths of a lease since the last heartbeat
    assert not await queue.write("q", 1, {"companies.tencent.attempts": 3})
    await replica.heartbeat()
    assert await queue.write("q", 1, {"companies.tencent.attempts": 3})


async def test_a_replica_that_leaves_frees_its_queries_at_once_and_old_heartbeats_are_forgotten(db):
    clock = Clock()
    leaving, staying = await _replica(db, clock), await _replica(db, clock)
    assert await WorkQueue(db, leaving).add_owned(_query("q").to_doc(), NOW)
    await leaving.leave()
    [orphan] = await WorkQueue(db, staying).orphans(await staying.alive())
    assert orphan["_id"] == "q"
    clock.advance(LEASE * 11)
    await staying.heartbeat()
    gone = await _replica(db, Clock())  # a heartbeat from long ago
    await staying.alive()
    assert await db["replicas"].find_one({"_id": gone.owner}) is None
    assert await db["replicas"].find_one({"_id": staying.owner}) is not None


def _final(qid: str) -> dict:
    query = _query(qid)
    query.status, query.completed_at, query.open = PARTIAL, NOW + 60 * S, False
    return query.to_doc()


async def test_finishing_records_the_query_and_removes_its_work_in_batches(db, commands):
    queue = WorkQueue(db, await _replica(db, Clock()))
    for i in range(5):
        assert await queue.add_owned(_query(f"q{i}").to_doc(), NOW)
    recorder = Recorder(db, delay=0.02)
    commands.commands.clear()
    await asyncio.gather(*(recorder.finish(_final(f"q{i}")) for i in range(5)))
    assert commands.count("insert queries") == 1 and commands.count("delete work") == 1
    assert await db["work"].count_documents({}) == 0
    assert await db["queries"].count_documents({}) == 5
    got = await QueryStore(db).get("q3")
    assert got == Query.from_doc(_final("q3")) and got.status == PARTIAL and not got.open
    assert await QueryStore(db).record_exists("q3")
    assert not await QueryStore(db).record_exists("q9")


async def test_finishing_a_query_already_recorded_succeeds(db):
    # A round wrote the record and died before deleting the work item; the
    # query is finished again (with a fresh one in the same batch).
    queue = WorkQueue(db, await _replica(db, Clock()))
    await queue.add_owned(_query("old").to_doc(), NOW)
    await queue.add_owned(_query("new").to_doc(), NOW)
    recorder = Recorder(db, delay=0.02)
    await recorder.finish(_final("old"))
    await queue.add_owned(_query("old").to_doc(), NOW)
    await asyncio.gather(recorder.finish(_final("old")), recorder.finish(_final("new")))
    assert await db["work"].count_documents({}) == 0
    assert sorted(d["_id"] for d in await db["queries"].find({}).to_list(None)) == ["new", "old"]
    await recorder.finish(_final("old"))  # and again, alone
    assert await db["queries"].count_documents({}) == 2


async def test_a_replica_whose_heartbeat_went_stale_drops_what_it_owned_and_carries_on_as_another(db):
    clock = Clock()
    replica = await _replica(db, clock)
    queue = WorkQueue(db, replica)
    assert await queue.add_owned(_query("q").to_doc(), NOW)
    dropped = []
    replica.on_identity_lost(lambda: dropped.append(True))
    old = replica.owner
    clock.advance(LEASE + S)  # no heartbeat for over a lease (the database was away)
    assert not queue.may_write()
    await replica.ensure_fresh()
    assert dropped == [True] and replica.owner != old and queue.may_write()
    # Its old id is an orphan owner now: its query is free for whoever looks, itself included.
    alive = await replica.alive()
    assert old not in alive and replica.owner in alive
    [orphan] = await queue.orphans(alive)
    assert await queue.take_over(orphan, clock.now) == 2
    assert (await db["work"].find_one({"_id": "q"}))["owner"] == replica.owner
    # Fresh again: nothing more is dropped, no new id.
    await replica.ensure_fresh()
    assert dropped == [True] and queue.may_write()


# -- a hash-key rotation (review L6) ---------------------------------------------


async def test_a_phone_stays_under_the_key_its_chain_began_with_through_a_rotation(db):
    """Keys h1 then h2: a phone first changed under h1 is found by its h1
    hash while h2 is current, and its changes go on in that one chain (so
    its limits hold, and no two replicas split it); a new phone starts
    under h2; once h1 is dropped its phones are unknown."""
    before, after = ["h1.p"], ["h2.p", "h1.p"]
    a = PhoneStore(db, "a")
    v1, _ = await _commit(a, await a.read(before), lambda p: Event("code", NOW, code=_code()))
    await a.write(v1, NOW)

    b = PhoneStore(db, "b")  # a replica with the rotated keys, nothing in memory
    found = await b.read(after)
    assert found == v1 and found.hash == "h1.p"
    v2, _ = await _commit(b, found, lambda p: Event("wrong", NOW + S))
    assert v2.hash == "h1.p" and await db["claims"].find_one({"_id": "v:h1.p:2"}) is not None
    assert await db["claims"].find_one({"_id": "v:h2.p:1"}) is None
    # A first writer that died between its claim and the document: the
    # chain is found by its first claim, and folded.
    lone = PhoneStore(db, "c")
    assert isinstance(await lone.claim(Phone("h1.q"), Event("code", NOW, code=_code())), Committed)
    assert (await PhoneStore(db, "d").read(["h2.q", "h1.q"])).v == 1
    assert await PhoneStore(db, "d").read(["h2.new", "h1.new"]) == Phone("h2.new")
    assert await PhoneStore(db, "e").read(["h2.p"]) == Phone("h2.p")  # h1 dropped: what keeping it prevents
    with pytest.raises(TypeError):
        await b.read("h1.p")  # one hash, not a sequence of them

    assert await a.count_under_key("h1") == 1 and await a.count_under_key("h2") == 0
    rotating = KeyedHasher({"h1": b"1" * 32, "h2": b"2" * 32}, "h2")
    retention = Retention(db, dt.timedelta(days=30), a)
    await db["queries"].insert_one({"_id": "q-h1", "requester": "h1.0123"})
    assert await retention.count_previous_keys(rotating) == {
        ("h1", "phones"): 1,
        ("h1", "work"): 0,
        ("h1", "queries"): 1,
    }
    assert await retention.count_previous_keys(KeyedHasher({"h2": b"2" * 32}, "h2")) == {}
