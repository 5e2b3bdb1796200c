"""Issue 14 items 4-5: every receipt habit of the scenario's `sms_centre`
section, over SMPP 3.4 and CMPP 3.0 where the protocol has the thing, brings
a message to a final, correct sms.state through the real notifier process
against the real simulator: the id written in another form, receipts without
TLVs, one receipt per long message or none, a receipt before the submit
answer, ids that wrap. The `d:` record's reason says how it was decided
(by receipts, or at the receipt window's close)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pymongo import AsyncMongoClient

from tests.integration.test_sms_support import (  # noqa: F401  (fixtures)
    PHONE,
    RESULT_TEXT,
    STATES,
    SmsCentre,
    alipay_keys,
    notifier_factory,
    send,
    sms_centre_factory,
    wait_for_states,
)

UNDELIVERABLE = "13900009999"
FINAL = {"DELIVERED", "FAILED"}
# Long enough that a message settled well before it was settled by its receipts.
LONG_WINDOW = "60"
SHORT_WINDOW = "2"


def _cmpp_port(centre: SmsCentre) -> int:
    urls = dict(line.removeprefix("simulators: ").split(" listening on ") for line in centre.proc.lines)
    return int(urls["sms_centre_cmpp"].rsplit(":", 1)[1])


def _start(sms_centre_factory, notifier_factory, protocol: str, habits: dict, window: str, **settings: str):
    centre = sms_centre_factory({"undeliverable": [UNDELIVERABLE], **habits})
    env = {"YZTC_NOTIFIER_RECEIPT_WINDOW_SECONDS": window}
    if protocol == "cmpp30":
        env |= {
            "YZTC_NOTIFIER_SMSC_PROTOCOL": "cmpp30",
            "YZTC_NOTIFIER_CMPP_PORT": str(_cmpp_port(centre)),
            "YZTC_NOTIFIER_CMPP_SOURCE_ADDR": "901234",
            "YZTC_NOTIFIER_CMPP_SHARED_SECRET": "yztc-dev",
        }
    notifier = notifier_factory(centre.smpp_port, extra_env=env, **settings)
    return centre, notifier


async def _reason(mongodb_uri: str, message_id: str) -> str:
    """The final record's reason (written in batches: it may land a moment
    after GetStatus answers from memory)."""
    client = AsyncMongoClient(mongodb_uri)
    try:
        deadline = time.monotonic() + 5
        while (found := await client.get_default_database()["sms"].find_one({"_id": f"d:{message_id}"})) is None:
            assert time.monotonic() < deadline, f"no final record of {message_id}"
            await asyncio.sleep(0.1)
        return found["reason"]
    finally:
        await client.close()


async def _send_both(notifier, tag: str) -> tuple[dict, float]:
    """A three-part result SMS to a phone that gets it and a one-part code to
    one that does not; their final states, and how long that took."""
    started = time.monotonic()
    async with notifier.channel() as channel:
        await send(channel, f"result:{tag}", PHONE, RESULT_TEXT)
        await send(channel, f"code:{tag}", UNDELIVERABLE, "您的验证码为123456，5分钟内有效。验证码请勿告知他人。")
        found = await wait_for_states(channel, [f"result:{tag}", f"code:{tag}"], FINAL, timeout=40)
    return {m: STATES[s.state] for m, s in found.items()}, time.monotonic() - started


@pytest.mark.parametrize("receipt_tlvs", [True, False])
@pytest.mark.parametrize("receipt_id_format", ["same", "decimal", "hex_upper_padded", "upper"])
async def test_smpp_receipts_in_any_id_form_with_or_without_tlvs_settle_their_message(
    sms_centre_factory, notifier_factory, mongodb_uri, receipt_id_format, receipt_tlvs
):
    habits = {"receipt_id_format": receipt_id_format, "receipt_tlvs": receipt_tlvs}
    _, notifier = _start(sms_centre_factory, notifier_factory, "smpp34", habits, LONG_WINDOW)
    tag = f"{receipt_id_format}-{receipt_tlvs}"
    states, took = await _send_both(notifier, tag)
    assert states == {f"result:{tag}": "DELIVERED", f"code:{tag}": "FAILED"}
    assert took < 30, "settled by the window, not by its receipts"
    assert await _reason(mongodb_uri, f"result:{tag}") == ""
    assert await _reason(mongodb_uri, f"code:{tag}") == "receipt UNDELIV"


@pytest.mark.parametrize("protocol", ["smpp34", "cmpp30"])
@pytest.mark.parametrize("receipts", ["each_part", "first_part", "last_part"])
async def test_one_receipt_per_long_message_settles_it_at_the_windows_close(
    sms_centre_factory, notifier_factory, mongodb_uri, protocol, receipts
):
    window = LONG_WINDOW if receipts == "each_part" else SHORT_WINDOW
    _, notifier = _start(sms_centre_factory, notifier_factory, protocol, {"receipts": receipts}, window)
    tag = f"{protocol}-{receipts}"
    states, took = await _send_both(notifier, tag)
    assert states == {f"result:{tag}": "DELIVERED", f"code:{tag}": "FAILED"}
    assert await _reason(mongodb_uri, f"result:{tag}") == ""
    # The one-part code has its one receipt under every habit.
    assert await _reason(mongodb_uri, f"code:{tag}") == "receipt UNDELIV"
    if receipts == "each_part":
        assert took < 30


async def test_smpp_no_receipts_at_all_the_centre_is_asked_with_query_sm(
    sms_centre_factory, notifier_factory, mongodb_uri
):
    centre, notifier = _start(sms_centre_factory, notifier_factory, "smpp34", {"receipts": "none"}, SHORT_WINDOW)
    states, _ = await _send_both(notifier, "smpp-none")
    assert states == {"result:smpp-none": "DELIVERED", "code:smpp-none": "FAILED"}
    assert await _reason(mongodb_uri, "code:smpp-none") == "receipt UNDELIV"  # as query_sm_resp said
    counters = await centre.counters()
    assert counters.get("receipts", 0) == 0 and counters["query_sm"] >= 2


async def test_cmpp_no_receipts_at_all_fails_with_no_receipt_at_the_windows_close(
    sms_centre_factory, notifier_factory, mongodb_uri
):
    # CMPP 3.0's CMPP_QUERY gives daily totals only: nothing to ask, nothing
    # arrived, and sms.state has no "unknown": FAILED, reason "no receipt".
    _, notifier = _start(sms_centre_factory, notifier_factory, "cmpp30", {"receipts": "none"}, SHORT_WINDOW)
    states, took = await _send_both(notifier, "cmpp-none")
    assert states == {"result:cmpp-none": "FAILED", "code:cmpp-none": "FAILED"}
    assert took >= 2
    assert await _reason(mongodb_uri, "result:cmpp-none") == "no receipt"
    # Final: GetStatus answers it without asking again, and it stays so.
    async with notifier.channel() as channel:
        again = await wait_for_states(channel, ["result:cmpp-none"], FINAL)
    assert STATES[again["result:cmpp-none"].state] == "FAILED"


@pytest.mark.parametrize("protocol", ["smpp34", "cmpp30"])
async def test_a_receipt_before_its_submit_answer_still_settles(
    sms_centre_factory, notifier_factory, mongodb_uri, protocol
):
    _, notifier = _start(sms_centre_factory, notifier_factory, protocol, {"receipt_before_resp": True}, LONG_WINDOW)
    tag = f"{protocol}-early"
    states, took = await _send_both(notifier, tag)
    assert states == {f"result:{tag}": "DELIVERED", f"code:{tag}": "FAILED"}
    assert took < 30
    assert await _reason(mongodb_uri, f"code:{tag}") == "receipt UNDELIV"


@pytest.mark.parametrize("protocol", ["smpp34", "cmpp30"])
async def test_ids_that_wrap_settle_only_the_message_they_belong_to(
    sms_centre_factory, notifier_factory, mongodb_uri, protocol
):
    # Ids count 1..4: every message after the first reuses the ids of an
    # earlier one, alternately to a phone that gets it and one that does not.
    _, notifier = _start(sms_centre_factory, notifier_factory, protocol, {"message_id_wrap": 4}, LONG_WINDOW)
    seen: list[str] = []
    async with notifier.channel() as channel:
        for i in range(6):
            dest = PHONE if i % 2 == 0 else UNDELIVERABLE
            message_id = f"result:{protocol}-wrap-{i}"
            accepted = await send(channel, message_id, dest, RESULT_TEXT)
            seen += accepted.smsc_message_ids
            final = (await wait_for_states(channel, [message_id], FINAL, timeout=20))[message_id]
            assert STATES[final.state] == ("DELIVERED" if dest == PHONE else "FAILED"), message_id
            assert await _reason(mongodb_uri, message_id) == ("" if dest == PHONE else "receipt UNDELIV")
    assert len(seen) == 18 and len(set(seen)) == 4  # the ids did repeat
