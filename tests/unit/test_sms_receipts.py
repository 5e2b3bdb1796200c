"""Delivery receipts read from deliver_sm, and what a submit_sm_resp status means."""

from __future__ import annotations

from sms_notifier import smpp_status
from sms_notifier.receipts import TLV_MESSAGE_STATE, TLV_RECEIPTED_MESSAGE_ID, is_receipt, parse
from sms_notifier.smpp_status import Verdict, verdict

TEXT = b"id:4f2a sub:001 dlvrd:001 submit date:2405011200 done date:2405011201 stat:DELIVRD err:000 text:"


def test_receipt_from_its_text():
    receipt = parse(0x04, TEXT, {})
    assert receipt is not None and (receipt.smsc_message_id, receipt.stat) == ("4f2a", "DELIVRD")
    assert receipt.final and receipt.delivered


def test_the_optional_parameters_win_over_the_text():
    tlvs = {TLV_RECEIPTED_MESSAGE_ID: b"node-7\x00", TLV_MESSAGE_STATE: bytes([5])}
    receipt = parse(0x04, TEXT, tlvs)
    assert receipt is not None and (receipt.smsc_message_id, receipt.stat) == ("node-7", "UNDELIV")
    assert receipt.final and not receipt.delivered


def test_intermediate_states_are_not_final():
    receipt = parse(0x04, b"id:9 stat:ENROUTE err:000", {})
    assert receipt is not None and not receipt.final


def test_a_mobile_originated_sms_or_a_nameless_receipt_is_no_receipt():
    assert not is_receipt(0x00) and parse(0x00, TEXT, {}) is None
    assert parse(0x04, b"stat:DELIVRD", {}) is None
    assert is_receipt(0x04) and is_receipt(0x04 | 0x40)


def test_status_verdicts():
    assert verdict(smpp_status.ESME_ROK) is Verdict.ACCEPTED
    for transient in (smpp_status.ESME_RTHROTTLED, smpp_status.ESME_RMSGQFUL, smpp_status.ESME_RSYSERR):
        assert verdict(transient) is Verdict.TRANSIENT
    for permanent in (smpp_status.ESME_RINVDSTADR, smpp_status.ESME_RINVMSGLEN, smpp_status.ESME_RINVSRCADR, 0x400):
        assert verdict(permanent) is Verdict.PERMANENT
    assert smpp_status.name(0x0B) == "ESME_RINVDSTADR" and smpp_status.name(0x400) == "0x00000400"
