"""The send queue's claims against a real FerretDB: of replicas racing for
the same message exactly one wins (a unique lease document, atomic on
FerretDB and MongoDB alike), a stale view never wins, and a holder whose
lease has passed to another replica finds out before it writes again."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

from pymongo import AsyncMongoClient

from sms_notifier.send_queue import SendQueue

NOW = dt.datetime(2024, 5, 1, 4, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=30)


async def test_of_eight_replicas_racing_for_each_of_40_messages_exactly_one_wins(mongodb_uri):
    clients = [AsyncMongoClient(mongodb_uri, tz_aware=True) for _ in range(8)]
    try:
        queues = [SendQueue(c.get_default_database(), LEASE, owner=f"replica-{i}") for i, c in enumerate(clients)]
        for n in range(40):
            await queues[0].add(f"code:{n}", NOW)
        items = await queues[0].due(NOW, limit=100)
        assert len(items) == 40

        async def race(item: dict) -> list[tuple[str, int]]:
            # Every replica read the item before any claimed it, as in a real race.
            won = await asyncio.gather(*(q.claim(dict(item), NOW) for q in queues))
            return [(q.owner, gen) for q, gen in zip(queues, won, strict=False) if gen is not None]

        results = await asyncio.gather(*(race(item) for item in items))
        assert all(len(winners) == 1 for winners in results), [w for w in results if len(w) != 1]
        assert {gen for winners in results for _, gen in winners} == {1}
        print(f"\nwinners per replica: {dict(Counter(owner for w in results for owner, _ in w))}")
        # Claimed items are not due again until the lease runs out.
        assert await queues[0].due(NOW, limit=100) == []
        assert len(await queues[0].due(NOW + LEASE, limit=100)) == 40
    finally:
        for client in clients:
            await client.close()


async def test_a_stale_view_never_wins_and_a_lost_lease_is_known_as_lost(mongodb_uri):
    client = AsyncMongoClient(mongodb_uri, tz_aware=True)
    try:
        db = client.get_default_database()
        a, b = SendQueue(db, LEASE, owner="a"), SendQueue(db, LEASE, owner="b")
        await a.add("result:q", NOW)
        [stale] = await a.due(NOW, limit=10)
        assert await a.claim(stale, NOW) == 1
        await a.release("result:q", 1, NOW)  # a's round ends with work left
        assert await b.claim(stale, NOW) is None  # b read the item before a's round: stale
        [fresh] = await b.due(NOW, limit=10)
        assert await b.claim(fresh, NOW) == 2
        # a, stalled past its lease, finds it lost before any further submit
        # or write of its round; its release and finish change nothing.
        assert not await a.holds("result:q", 1) and not await a.renew("result:q", 1, NOW)
        await a.release("result:q", 1, NOW + LEASE * 10)
        await a.finish("result:q", 1)
        assert await b.holds("result:q", 2)
        [item] = await b.due(NOW + LEASE, limit=10)
        assert item["lease_gen"] == 2 and item["next_at"] == NOW + LEASE
        await b.finish("result:q", 2)
        assert await b.due(NOW + LEASE * 100, limit=10) == []
        # Old lease documents go in bulk.
        assert await a.forget_leases(NOW + dt.timedelta(seconds=1)) == 2
    finally:
        await client.close()


async def test_a_claimer_that_died_between_its_two_writes_does_not_block_the_message(mongodb_uri):
    client = AsyncMongoClient(mongodb_uri, tz_aware=True)
    try:
        db = client.get_default_database()
        dead, alive = SendQueue(db, LEASE, owner="dead"), SendQueue(db, LEASE, owner="alive")
        await alive.add("code:x", NOW)
        [item] = await alive.due(NOW, limit=10)
        # "dead" inserted its lease document #1 and died before moving the item on.
        await db["sms_leases"].insert_one({"_id": "code:x#1", "message_id": "code:x", "owner": "dead", "at": NOW})
        assert await alive.claim(item, NOW + LEASE / 2) is None  # it might still be alive
        assert await alive.claim(item, NOW + LEASE) == 2  # a lease later: generation 1 is skipped
        assert await alive.holds("code:x", 2) and not await dead.holds("code:x", 1)
    finally:
        await client.close()
