"""The notifier (`python -m sms_notifier`) against the SMS-centre simulator
over SMPP 3.4, real processes and a real FerretDB: the acceptance tests of
issue 6 (and of issue 12's push: Send submits at once, the queue is the
fallback), each with the figures it shows printed (pytest -s)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from pymongo import AsyncMongoClient

from devstack.stack import free_port
from tests.conftest import FERRETDB
from tests.integration.test_sms_support import (  # noqa: F401  (fixtures)
    PHONE,
    RESULT_TEXT,
    STATES,
    alipay_keys,
    notifier_factory,
    per_second,
    send,
    sms_centre_factory,
    status,
    wait_for_receipts,
    wait_for_states,
)

FINAL = {"DELIVERED", "FAILED"}


def phones(n: int, prefix: str = "1390000") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def code_text(i: int) -> str:
    return f"【一证通查】您的验证码为{i:06d}，5分钟内有效。"


async def test_three_part_result_sms_arrives_whole_in_ucs2_and_its_receipt_delivers_it(
    sms_centre_factory, notifier_factory, mongodb_uri
):
    centre = sms_centre_factory()
    notifier = notifier_factory(centre.smpp_port)
    async with notifier.channel() as channel:
        accepted = await send(channel, "result:q1", PHONE, RESULT_TEXT)
        # Send submits at once and answers when the centre has taken every
        # part: SENT, or DELIVERED when the (immediate) receipt came first.
        assert STATES[accepted.state] in {"SENT", "DELIVERED"} and accepted.segments == 3
        assert len(accepted.smsc_message_ids) == 3 and accepted.attempts == 1
        final = (await wait_for_states(channel, ["result:q1"], FINAL))["result:q1"]

    [message] = await centre.messages(PHONE)
    assert message["text"] == RESULT_TEXT
    assert message["source"] == "10699000" and message["segments"] == 3
    parts = await centre.submits(PHONE)
    assert len(parts) == 3
    ref = parts[0]["udh"][6:8]
    for seq, part in enumerate(parts, start=1):
        assert part["udh"] == f"050003{ref}03{seq:02x}"  # concatenation: reference, total, sequence
        assert (part["data_coding"], part["esm_class"], part["registered_delivery"]) == (8, 0x40, 1)
        assert (part["source"], part["source_ton"], part["source_npi"]) == ("10699000", 3, 0)
        assert part["status"] == "ESME_ROK"
    assert STATES[final.state] == "DELIVERED" and final.attempts == 1
    assert list(final.smsc_message_ids) == [p["message_id"] for p in parts]
    assert list(accepted.smsc_message_ids) == list(final.smsc_message_ids)

    # The records: SENT with its parts, a look-up per part, the final state;
    # nothing queued. Neither the destination nor the text is stored anywhere.
    client = AsyncMongoClient(mongodb_uri)
    try:
        db = client.get_default_database()
        sent = await db["sms"].find_one({"_id": "s:result:q1"})
        assert [p["smsc_id"] for p in sent["parts"]] == list(final.smsc_message_ids)
        assert sent["segments"] == 3 and f"{sent['udh_ref']:02x}" == ref and sent["attempt"] == 1
        for seq, smsc_id in enumerate(final.smsc_message_ids, start=1):
            look_up = await db["sms"].find_one({"_id": f"p:{smsc_id}"})
            assert (look_up["m"], look_up["seq"]) == ("result:q1", seq)
        # The final state is answered from memory at once and written in the
        # next batch of final records (within tens of milliseconds).
        deadline = time.monotonic() + 5
        while (done := await db["sms"].find_one({"_id": "d:result:q1"})) is None:
            assert time.monotonic() < deadline, "no final record"
            await asyncio.sleep(0.05)
        assert done["state"] == "DELIVERED"
        assert await db["sms_queue"].count_documents({}) == 0
        dump = repr([await db[name].find().to_list(None) for name in await db.list_collection_names()])
        assert PHONE not in dump and "一证通查" not in dump
    finally:
        await client.close()


async def test_connection_dropped_in_a_batch_of_300_all_arrive_none_twice(sms_centre_factory, notifier_factory):
    centre = sms_centre_factory({"drop_at": [150], "receipt_delay_ms": 200})
    notifier = notifier_factory(centre.smpp_port, max_per_second="400", window="10")
    dests = phones(300)
    started = time.monotonic()
    async with notifier.channel() as channel:
        await asyncio.gather(*(send(channel, f"code:{i}", p, code_text(i)) for i, p in enumerate(dests)))
        await wait_for_receipts(centre, 300)
        final = await wait_for_states(channel, [f"code:{i}" for i in range(300)], FINAL)
    took = time.monotonic() - started

    counters = await centre.counters()
    messages = await centre.messages()
    accepted = Counter(s["dest"] for s in await centre.submits() if s["status"] == "ESME_ROK")
    print(f"\n300 messages, connection dropped at submit 150: {took:.1f} s, centre counters {counters}")
    assert counters["drops"] == 1 and counters["binds"] == 2  # dropped, and bound again
    assert sorted(m["dest"] for m in messages) == sorted(dests)  # all arrived, each once
    assert set(accepted.values()) == {1}
    assert {STATES[s.state] for s in final.values()} == {"DELIVERED"}
    assert [m["text"] for m in sorted(messages, key=lambda m: m["dest"])] == [code_text(i) for i in range(300)]


async def test_throttled_for_a_while_slows_down_delivers_all_and_never_exceeds_the_rate(
    sms_centre_factory, notifier_factory
):
    centre = sms_centre_factory({"throttle": [{"after": 20, "for_ms": 1000}]})
    notifier = notifier_factory(centre.smpp_port, max_per_second="20", window="10")
    dests = phones(80, "1370000")
    started = time.monotonic()
    async with notifier.channel() as channel:
        await asyncio.gather(*(send(channel, f"code:t{i}", p, code_text(i)) for i, p in enumerate(dests)))
        await wait_for_receipts(centre, 80)
        final = await wait_for_states(channel, [f"code:t{i}" for i in range(80)], FINAL)
    took = time.monotonic() - started

    submits = await centre.submits()
    throttled = [s for s in submits if s["status"] == "ESME_RTHROTTLED"]
    counts = per_second(submits)
    print(
        f"\n80 messages at max 20/s, throttled for 1 s after 20: {took:.1f} s, "
        f"{len(throttled)} throttled replies, most submit_sm in one second {max(counts.values())}"
    )
    assert {STATES[s.state] for s in final.values()} == {"DELIVERED"}
    assert sorted(m["dest"] for m in await centre.messages()) == sorted(dests)
    # It slowed down: going on at 20/s through the 1 s spell would have drawn
    # ~20 throttled replies; backing off (pause, halved rate) draws a few.
    assert 1 <= len(throttled) <= 8
    assert max(counts.values()) <= 20  # counted at the centre, every second


async def test_invalid_destination_fails_at_once_without_retries(sms_centre_factory, notifier_factory):
    centre = sms_centre_factory()
    notifier = notifier_factory(centre.smpp_port)
    async with notifier.channel() as channel:
        started = time.monotonic()
        await send(channel, "code:bad", "10000000000", code_text(1))
        final = (await wait_for_states(channel, ["code:bad"], FINAL, timeout=5))["code:bad"]
        took = time.monotonic() - started
        await asyncio.sleep(1.0)  # time enough for a retry, were there one
        again = await status(channel, "code:bad")
    submits = await centre.submits("10000000000")
    print(f"\ninvalid destination: FAILED after {took:.2f} s, {len(submits)} submit_sm")
    assert STATES[final.state] == "FAILED" and final.failure_reason == "ESME_RINVDSTADR"
    assert [s["status"] for s in submits] == ["ESME_RINVDSTADR"]
    assert again.attempts == 1 and STATES[again.state] == "FAILED"
    assert await centre.messages("10000000000") == []


async def test_send_twice_with_one_id_sends_one_sms(sms_centre_factory, notifier_factory):
    centre = sms_centre_factory()
    notifier = notifier_factory(centre.smpp_port)
    async with notifier.channel() as channel:
        first = await send(channel, "result:twice", PHONE, RESULT_TEXT)
        # Even a caller that wrongly says "first attempt" again is answered from memory.
        second = await send(channel, "result:twice", PHONE, RESULT_TEXT)
        # And five at once with another id, as attempts of unknown number.
        burst = await asyncio.gather(
            *(send(channel, "code:burst", "13900139000", code_text(7), attempt=0) for _ in range(5))
        )
        final = await wait_for_states(channel, ["result:twice", "code:burst"], FINAL)
        later = await send(channel, "result:twice", PHONE, RESULT_TEXT, attempt=2)
    assert first.message_id == second.message_id == "result:twice"
    assert STATES[first.state] in {"SENT", "DELIVERED"}
    assert list(second.smsc_message_ids) == list(first.smsc_message_ids)
    # Each of the burst is answered for the one message: SENT, or DELIVERED
    # when the centre's receipt (immediate here) came before that answer.
    assert {b.message_id for b in burst} == {"code:burst"}
    assert {STATES[b.state] for b in burst} <= {"SENT", "DELIVERED"}
    assert {STATES[s.state] for s in final.values()} == {"DELIVERED"}
    assert STATES[later.state] == "DELIVERED"  # a repeat returns the message as it stands
    assert len(await centre.messages(PHONE)) == 1 and len(await centre.submits(PHONE)) == 3
    assert len(await centre.messages("13900139000")) == 1 and len(await centre.submits("13900139000")) == 1


async def test_a_later_attempt_elsewhere_is_answered_from_the_records_and_racing_attempts_send_once(
    sms_centre_factory, notifier_factory
):
    centre = sms_centre_factory()
    one = notifier_factory(centre.smpp_port, name="notifier-1")
    two = notifier_factory(centre.smpp_port, name="notifier-2")
    async with one.channel() as a, two.channel() as b:
        first = await send(a, "result:moved", PHONE, RESULT_TEXT)
        # The caller's next attempt reaches the other replica (which never saw it).
        again = await send(b, "result:moved", PHONE, RESULT_TEXT, attempt=2)
        # Two attempts with one number at once, one per replica: one claim wins.
        raced = await asyncio.gather(
            send(a, "code:raced", "13900139001", code_text(3), attempt=2),
            send(b, "code:raced", "13900139001", code_text(3), attempt=2),
        )
        final = await wait_for_states(a, ["result:moved", "code:raced"], FINAL)
    print(f"\nracing attempts answered {[STATES[r.state] for r in raced]}")
    # Send answers the message as it stands: a receipt that came before the
    # answer makes it DELIVERED already.
    assert STATES[first.state] in {"SENT", "DELIVERED"} and STATES[again.state] in {"SENT", "DELIVERED"}
    assert list(again.smsc_message_ids) == list(first.smsc_message_ids)
    assert len(await centre.submits(PHONE)) == 3 and len(await centre.messages(PHONE)) == 1
    # The winner answers SENT (or DELIVERED, its receipt first); the other
    # PENDING, or the winner's state if it read the record after the submit.
    answered = {STATES[r.state] for r in raced}
    assert answered <= {"SENT", "DELIVERED", "PENDING"} and answered & {"SENT", "DELIVERED"}
    assert len(await centre.submits("13900139001")) == 1 and len(await centre.messages("13900139001")) == 1
    assert {STATES[s.state] for s in final.values()} == {"DELIVERED"}


async def test_throttled_half_way_the_queue_sends_only_the_missing_parts(sms_centre_factory, notifier_factory):
    centre = sms_centre_factory({"throttle": [{"after": 1, "for_ms": 400}]})
    notifier = notifier_factory(centre.smpp_port)
    async with notifier.channel() as channel:
        accepted = await send(channel, "result:half", PHONE, RESULT_TEXT)
        final = (await wait_for_states(channel, ["result:half"], FINAL))["result:half"]
    submits = await centre.submits(PHONE)
    taken = [s for s in submits if s["status"] == "ESME_ROK"]
    print(f"\n3 parts, throttled after the first: {[s['status'] for s in submits]}, {final.attempts} rounds")
    # The first part went in the push; the queue sent the other two, not it again.
    assert STATES[accepted.state] == "PENDING" and list(accepted.smsc_message_ids) == [taken[0]["message_id"]]
    assert sorted(s["udh"][-2:] for s in taken) == ["01", "02", "03"]
    assert len({s["udh"] for s in submits}) == 3 and len({s["udh"][6:8] for s in submits}) == 1  # one reference
    [message] = await centre.messages(PHONE)
    assert message["text"] == RESULT_TEXT
    assert STATES[final.state] == "DELIVERED" and final.attempts >= 2
    assert list(final.smsc_message_ids) == [s["message_id"] for s in sorted(taken, key=lambda s: s["udh"])]


async def test_not_bound_queues_and_sends_once_the_centre_is_up(sms_centre_factory, notifier_factory):
    port = free_port()
    notifier = notifier_factory(port, reconnect_max_seconds="0.5")
    async with notifier.channel() as channel:
        queued = await send(channel, "code:later", PHONE, code_text(5))
        assert STATES[queued.state] == "PENDING" and queued.attempts == 0
        assert STATES[(await status(channel, "code:later")).state] == "PENDING"
        centre = sms_centre_factory(smpp_port=port)
        final = (await wait_for_states(channel, ["code:later"], FINAL))["code:later"]
    assert STATES[final.state] == "DELIVERED" and final.attempts == 1
    assert [m["text"] for m in await centre.messages(PHONE)] == [code_text(5)]


async def test_two_replicas_share_the_queue_and_send_each_message_once(sms_centre_factory, notifier_factory):
    centre = sms_centre_factory({"receipt_delay_ms": 100})
    first = notifier_factory(centre.smpp_port, name="notifier-1", max_per_second="100", window="8")
    second = notifier_factory(centre.smpp_port, name="notifier-2", max_per_second="100", window="8")
    dests = phones(120, "1360000")
    async with first.channel() as one, second.channel() as two:
        # Each replica is handed half the messages; either may send any of them.
        await asyncio.gather(*(send(one if i % 2 else two, f"code:r{i}", p, code_text(i)) for i, p in enumerate(dests)))
        await wait_for_receipts(centre, 120)
        final = await wait_for_states(one, [f"code:r{i}" for i in range(120)], FINAL)
    submits = await centre.submits()
    by_session = Counter(s["session"] for s in submits)
    print(f"\n120 messages, two replicas: submit_sm per SMPP session {dict(by_session)}")
    assert {STATES[s.state] for s in final.values()} == {"DELIVERED"}
    assert sorted(m["dest"] for m in await centre.messages()) == sorted(dests)
    assert len(submits) == 120
    assert len(by_session) == 2 and min(by_session.values()) >= 12  # both did a share


async def test_a_crashed_replica_loses_nothing(sms_centre_factory, notifier_factory):
    centre = sms_centre_factory()
    crashing = notifier_factory(centre.smpp_port, name="crashing", max_per_second="40", window="4", lease_seconds="2")
    dests = phones(60, "1350000")
    ids = [f"code:c{i}" for i in range(60)]
    async with crashing.channel() as channel:
        # Send submits at once; 60 at 40/s take 1.5 s: the kill comes while they go out.
        calls = [
            asyncio.create_task(send(channel, m, p, code_text(i)))
            for i, (m, p) in enumerate(zip(ids, dests, strict=False))
        ]
        deadline = time.monotonic() + 20
        while len(await centre.messages()) < 20:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        crashing.proc.kill()  # kill -9 in the middle of the batch
        answers = await asyncio.gather(*calls, return_exceptions=True)
    at_crash = len(await centre.messages())
    unanswered = [i for i, answer in enumerate(answers) if isinstance(answer, BaseException)]
    survivor = notifier_factory(centre.smpp_port, name="survivor", max_per_second="200", window="8", lease_seconds="2")
    async with survivor.channel() as channel:
        # The caller tries again, as a later attempt, every Send it got no answer to.
        await asyncio.gather(*(send(channel, ids[i], dests[i], code_text(i), attempt=2) for i in unanswered))
        final = await wait_for_states(channel, ids, {"SENT", *FINAL}, timeout=30)
    arrived = Counter(m["dest"] for m in await centre.messages())
    twice = sum(n - 1 for n in arrived.values())
    print(
        f"\ncrash after {at_crash} of 60 arrived, {len(unanswered)} Sends unanswered and tried again: "
        f"all 60 arrived, {twice} sent twice (in flight at the crash)"
    )
    assert 0 < len(unanswered) < 60
    assert set(arrived) == set(dests)
    assert {STATES[s.state] for s in final.values()} <= {"SENT", "DELIVERED"}
    # At least once: only what was in flight when the process died (at most
    # the window of 4) can have gone twice.
    assert twice <= 4


async def test_receipts_right_behind_the_submit_answers_are_matched_in_memory(
    sms_centre_factory, notifier_factory, mongodb_uri
):
    # The centre sends each part's receipt the moment it answers the part,
    # while the push still awaits the other answers and its record.
    centre = sms_centre_factory({"receipt_delay_ms": 0})
    notifier = notifier_factory(centre.smpp_port)
    ids = [f"result:early{i}" for i in range(20)]
    async with notifier.channel() as channel:
        sent = await asyncio.gather(*(send(channel, m, f"1380013{i:04d}", RESULT_TEXT) for i, m in enumerate(ids)))
        final = await wait_for_states(channel, ids, FINAL)
    # Answered as it stood: SENT, or DELIVERED when its receipt beat the answer.
    assert {STATES[s.state] for s in sent} <= {"SENT", "DELIVERED"} and all(s.smsc_message_ids for s in sent)
    assert {STATES[s.state] for s in final.values()} == {"DELIVERED"}
    client = AsyncMongoClient(mongodb_uri)
    try:
        ids = [doc["_id"] for doc in await client.get_default_database()["sms"].find({}, {"_id": 1}).to_list(None)]
    finally:
        await client.close()
    # Matched in memory: nothing was kept aside for another replica.
    assert not [i for i in ids if i.startswith("r:")], ids


def _own_ferretdb(port: int, data: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(FERRETDB), "--listen-addr", f"127.0.0.1:{port}", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().startswith("ready "), "FerretDB did not start"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


async def test_database_away_when_a_push_ends_sent_is_kept_in_memory_and_recorded_later(
    tmp_path, sms_centre_factory, notifier_factory
):
    port, data = free_port(), tmp_path / "own-ferretdb"
    data.mkdir()
    database = _own_ferretdb(port, data)
    uri = f"mongodb://127.0.0.1:{port}/away"
    try:
        centre = sms_centre_factory({"receipt_delay_ms": 3000})
        notifier = notifier_factory(centre.smpp_port, extra_env={"MONGODB_URI": uri})
        async with notifier.channel() as channel:
            _kill(database)  # kill -9: gone while the message goes out
            started = time.monotonic()
            sent = await send(channel, "result:away", PHONE, RESULT_TEXT)
            took = time.monotonic() - started
            # A repeat (the caller's retry) is answered from memory, sending nothing.
            again = await send(channel, "result:away", PHONE, RESULT_TEXT, attempt=2)
            database = _own_ferretdb(port, data)
            final = (await wait_for_states(channel, ["result:away"], FINAL, timeout=40))["result:away"]
        print(f"\ndatabase away: Send answered {STATES[sent.state]} in {took:.2f} s")
        assert STATES[sent.state] == "SENT" and len(sent.smsc_message_ids) == 3
        assert STATES[again.state] == "SENT" and list(again.smsc_message_ids) == list(sent.smsc_message_ids)
        assert STATES[final.state] == "DELIVERED"
        assert len(await centre.submits(PHONE)) == 3 and len(await centre.messages(PHONE)) == 1
        client = AsyncMongoClient(uri)
        try:
            deadline = time.monotonic() + 20
            while (record := await client.get_default_database()["sms"].find_one({"_id": "s:result:away"})) is None:
                assert time.monotonic() < deadline, "the SENT record was not written once the database came back"
                await asyncio.sleep(0.2)
            assert [p["smsc_id"] for p in record["parts"]] == list(sent.smsc_message_ids)
        finally:
            await client.close()
    finally:
        _kill(database)
