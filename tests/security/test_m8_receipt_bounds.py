"""M8 (and L5's queue): receipts trusted blindly and kept without bound.

The review: receipts were taken from the session without further checks; a
receipt whose id the centre reused settled the newest submission, with no
check of its submit date; unknown ids were kept in the database for 30 days
and the in-memory receipt queue had no bound, so whoever can inject can
flood receipts for unknown ids.

Now: a receipt whose submit date is earlier than the submission its id names
is not applied (in memory and through the database alike); the in-memory
queue is bounded, and a full queue refuses the receipt to the centre (which
sends it again later: none is lost); receipts kept aside for unknown ids
are bounded per replica and hour, and purged by age."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from pymongo import AsyncMongoClient

from simulators.cmpp_server import CmppServer
from simulators.scenario import parse_scenario
from simulators.smpp_server import SmppServer
from simulators.sms_centre import SmsCentre
from sms_notifier import message_records as records
from sms_notifier import ucs2_parts
from sms_notifier.cmpp_link import CmppLink, CmppSettings
from sms_notifier.message_store import MessageStore
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import Receipt
from sms_notifier.settling import Settler
from sms_notifier.smsc_link import Addressing, SmscLink

PHONE = "13800138000"


@pytest.fixture
async def db(mongodb_uri):
    client = AsyncMongoClient(mongodb_uri, tz_aware=True)
    yield client.get_default_database()
    await client.close()


async def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_a_receipt_dated_before_the_submission_its_id_names_is_not_applied(db):
    store = MessageStore(db)
    finals: dict[str, str] = {}
    settler = Settler(
        store,
        Metrics(),
        now=lambda: dt.datetime.now(dt.UTC),
        on_final=lambda m, state, _reason: finals.__setitem__(m, state),
        in_flight=list,
        wait_for_parts=0.1,
        batch_seconds=0.01,
    )
    await settler.start()
    now = dt.datetime.now(dt.UTC)
    earlier = now - dt.timedelta(hours=3)
    try:
        # In memory: this replica submitted part "7" just now; the centre had
        # given id 7 to another message three hours ago (its counter wrapped).
        settler.expect("result:new", "7")
        settler.sent("result:new", ["7"], now)
        await settler.on_receipt(Receipt("7", "UNDELIV", ("7",), earlier))
        assert settler.unsettled("result:new") and finals == {}
        # Through the records: part "8" submitted by another replica.
        await store.record_sent(records.sent_records("result:other", {1: "8"}, 1, 5, now, 1, 1))
        await settler.on_receipt(Receipt("8", "UNDELIV", ("8",), earlier))
        assert await store.kept_receipt("8") is None  # not even kept aside
        await asyncio.sleep(0.1)
        assert await store.final("result:other") is None and finals == {}
        # Receipts of the right date settle each.
        await settler.on_receipt(Receipt("7", "DELIVRD", ("7",), now))
        await settler.on_receipt(Receipt("8", "DELIVRD", ("8",), now))
        assert finals == {"result:new": "DELIVERED", "result:other": "DELIVERED"}
        await _until(lambda: store.final("result:new"))
    finally:
        await settler.close()


async def test_receipts_for_unknown_ids_are_kept_within_a_bound_and_purged_by_age(db):
    clock = [1000.0]
    store = MessageStore(db, kept_receipts_per_hour=5, kept_receipt_seconds=60, monotonic=lambda: clock[0])
    now = dt.datetime.now(dt.UTC)
    kept = [await store.keep_receipt((f"flood-{i}",), "DELIVRD", now) for i in range(20)]
    assert kept == [True] * 5 + [False] * 15 and store.receipts_dropped == 15
    assert await db["sms"].count_documents({"_id": {"$regex": "^r:flood-"}}) == 5
    # An hour on, this replica may keep some again.
    clock[0] += 3601
    assert await store.keep_receipt(("flood-late",), "DELIVRD", now + dt.timedelta(minutes=61))
    # Past their age, they go; the later one stays.
    assert await store.purge_kept_receipts(now + dt.timedelta(minutes=2)) == 5
    assert await db["sms"].count_documents({"_id": {"$regex": "^r:flood-"}}) == 1
    # Nothing else is touched by that purge.
    await store.record_sent(records.sent_records("result:kept", {1: "9"}, 1, 5, now, 1, 1))
    await store.purge_kept_receipts(now + dt.timedelta(days=1))
    assert await store.part("9") is not None


async def _centre_and_link(protocol: str, capacity: int):
    centre = SmsCentre(parse_scenario({}))
    if protocol == "cmpp30":
        server = CmppServer(centre, "901234", "yztc-dev")
        host, port = await server.start("127.0.0.1", 0)
        settings = CmppSettings(host=host, port=port, source_addr="901234", shared_secret="yztc-dev")
        link = CmppLink(settings, metrics=Metrics(), receipt_queue_capacity=capacity, reconnect_min=0.05)
        return centre, server, link
    server = SmppServer(centre, "yztc", "pw")
    host, port = await server.start("127.0.0.1", 0)
    link = SmscLink(
        host,
        port,
        "yztc",
        "pw",
        Addressing("10699000", 3, 0, 0, 1),
        window=10,
        metrics=Metrics(),
        receipt_queue_capacity=capacity,
        reconnect_min=0.05,
    )
    return centre, server, link


@pytest.mark.parametrize("protocol", ["smpp34", "cmpp30"])
async def test_a_full_receipt_queue_refuses_receipts_and_the_centre_sends_them_again(protocol):
    centre, server, link = await _centre_and_link(protocol, capacity=1)
    gate = asyncio.Event()
    got: list[Receipt] = []

    async def on_receipt(receipt: Receipt) -> None:
        await gate.wait()  # the database is slow: nothing gets recorded meanwhile
        got.append(receipt)

    link.on_receipt = on_receipt
    await link.start()
    try:
        await asyncio.wait_for(link.bound.wait(), 5)
        [part] = ucs2_parts.split("您的验证码为123456", 1, max_parts=1)
        answers = await asyncio.gather(*(link.submit(PHONE, part) for _ in range(12)))
        assert all(a.smsc_message_id for a in answers)
        # Four workers hold one each, the queue one more; the others are refused.
        await _until(lambda: _true(link._receipts.refused > 0))
        assert len(link._receipts) <= 1
        gate.set()
        # The centre kept what was refused and sends it again: none is lost.
        await _until(lambda: _true(len(got) == 12), timeout=20)
        assert sorted(r.smsc_message_id for r in got) == sorted(a.smsc_message_id for a in answers)
    finally:
        gate.set()
        await link.close()
        await server.stop()


async def _true(value: bool) -> bool:
    return value
