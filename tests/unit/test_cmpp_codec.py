"""The CMPP 3.0 codec (yztc/cmpp.py) against known vectors and the field
widths of QB-GF-028-2003 V3.0.0 §8.4, and encode/decode round trips."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from yztc import cmpp

# gocmpp's connect_test.go vector, its MD5 recomputed (tech-facts §4c).
GOCMPP_CONNECT = bytes.fromhex("00000027000000010000001739303030303190d00c1d517abd0b4f65f6bcf8535d16213cdc73be")


def test_connect_matches_the_gocmpp_vector() -> None:
    connect = cmpp.Connect.signed("900001", "888888", 1021080510, version=0x21)
    assert connect.encode(0x17) == GOCMPP_CONNECT
    assert cmpp.authenticator_source("900001", "888888", 1021080510).hex() == "90d00c1d517abd0b4f65f6bcf8535d16"


def test_connect_decodes_and_verifies() -> None:
    head = cmpp.header(GOCMPP_CONNECT[:12])
    assert (head.total_length, head.command_id, head.sequence_id) == (39, cmpp.CONNECT, 0x17)
    connect = cmpp.Connect.decode(GOCMPP_CONNECT[12:])
    assert (connect.source_addr, connect.version, connect.timestamp) == ("900001", 0x21, 1021080510)
    assert connect.verify("888888")
    assert not connect.verify("888889")


def test_timestamp_is_mmddhhmmss() -> None:
    assert cmpp.timestamp(dt.datetime(2026, 1, 2, 3, 4, 5)) == 102030405
    # Zero-padded to 10 digits inside the authenticator: January would lose its 0.
    assert cmpp.authenticator_source("900001", "s", 102030405) == cmpp.authenticator_source("900001", "s", 102030405)
    assert cmpp.Connect.signed("900001", "s", 102030405).verify("s")


def test_connect_resp_is_33_octets_with_the_ismg_authenticator() -> None:
    source_auth = bytes.fromhex("90d00c1d517abd0b4f65f6bcf8535d16")
    auth = cmpp.authenticator_ismg(0, source_auth, "888888")
    import hashlib

    assert auth == hashlib.md5(b"\x00\x00\x00\x00" + source_auth + b"888888").digest()
    raw = cmpp.ConnectResp(0, auth, 0x30).encode(7)
    assert len(raw) == 33
    assert raw[:12] == struct.pack(">III", 33, 0x80000001, 7)
    assert cmpp.ConnectResp.decode(raw[12:]) == cmpp.ConnectResp(0, auth, 0x30)


def _submit(**changes) -> cmpp.Submit:
    fields = dict(
        dest_terminal_ids=("13800138000",),
        msg_content=bytes([5, 0, 3, 0x2A, 2, 1]) + "查询结果".encode("utf-16-be"),
        src_id="10699000",
        msg_src="901234",
        service_id="YZTC",
        pk_total=2,
        pk_number=1,
        tp_udhi=1,
    )
    fields.update(changes)
    return cmpp.Submit(**fields)


def test_submit_has_the_3_0_field_widths() -> None:
    submit = _submit()
    raw = submit.encode(5)
    content_length = len(submit.msg_content)
    # 12 header + 129 fixed before DestUsr_tl... (Msg_Id 8 ... Src_Id 21, DestUsr_tl 1)
    # + 32 per terminal + Dest_terminal_type 1 + Msg_Length 1 + content + LinkID 20.
    assert len(raw) == 12 + 129 + 32 + 1 + 1 + content_length + 20
    body = raw[12:]
    assert body[8:12] == bytes([2, 1, 1, 0])  # Pk_total, Pk_number, Registered_Delivery, Msg_level
    assert body[12:22] == b"YZTC" + b"\x00" * 6  # Service_Id
    assert body[55:59] == bytes([0, 0, 1, 8])  # Fee_terminal_type, TP_pId, TP_udhi, Msg_Fmt 8 (UCS2)
    assert body[59:65] == b"901234"  # Msg_src
    assert body[107:128] == b"10699000" + b"\x00" * 13  # Src_Id, 21 octets
    assert body[128] == 1  # DestUsr_tl
    assert body[129:161] == b"13800138000" + b"\x00" * 21  # Dest_terminal_Id, 32 octets
    assert body[162] == content_length  # after Dest_terminal_type
    assert body[163 : 163 + content_length] == submit.msg_content
    assert body[-20:] == b"\x00" * 20  # LinkID


def test_submit_round_trips() -> None:
    submit = _submit(dest_terminal_ids=("13800138000", "13900139000"), link_id="L1", valid_time="261130120000000+")
    raw = submit.encode(9)
    assert cmpp.header(raw[:12]).command_id == cmpp.SUBMIT
    assert cmpp.Submit.decode(raw[12:]) == submit


def test_submit_refuses_what_the_fields_cannot_hold() -> None:
    with pytest.raises(cmpp.CmppError):
        _submit(src_id="1" * 22).encode(1)
    with pytest.raises(cmpp.CmppError):
        _submit(dest_terminal_ids=()).encode(1)
    with pytest.raises(cmpp.CmppError):
        cmpp.Submit.decode(_submit().encode(1)[12:-1])  # LinkID cut short


def test_submit_resp_carries_an_8_octet_msg_id_and_a_4_octet_result() -> None:
    raw = cmpp.SubmitResp(0x0123456789ABCDEF, cmpp.RESULT_FLOW_CONTROL).encode(3)
    assert raw == struct.pack(">III", 24, 0x80000004, 3) + bytes.fromhex("0123456789abcdef") + b"\x00\x00\x00\x08"
    assert cmpp.SubmitResp.decode(raw[12:]) == cmpp.SubmitResp(0x0123456789ABCDEF, 8)
    assert cmpp.result_name(8) == "CMPP_FLOW_CONTROL"
    assert cmpp.result_name(99) == "CMPP_RESULT_99"


def test_status_report_is_71_octets_and_round_trips_in_a_deliver() -> None:
    report = cmpp.Report(0xFEDCBA9876543210, "DELIVRD", "2611301200", "2611301201", "13800138000", 42)
    content = report.encode()
    assert len(content) == cmpp.REPORT_LENGTH == 71
    assert content[8:15] == b"DELIVRD"
    deliver = cmpp.Deliver.report(77, "10699000", report)
    raw = deliver.encode(11)
    # 12 header + Msg_Id 8, Dest_Id 21, Service_Id 10, TP_pid/TP_udhi/Msg_Fmt 3,
    # Src_terminal_Id 32, Src_terminal_type 1, Registered_Delivery 1, Msg_Length 1, content, LinkID 20
    assert len(raw) == 12 + 77 + 71 + 20
    decoded = cmpp.Deliver.decode(raw[12:])
    assert decoded == deliver
    assert decoded.registered_delivery == 1
    assert decoded.src_terminal_id == "13800138000"
    assert decoded.status_report() == report


def test_a_2_0_sized_report_is_still_read() -> None:
    content = (
        struct.pack(">Q", 5)
        + b"UNDELIV"
        + b"2611301200"
        + b"2611301201"
        + b"13800138000".ljust(21, b"\x00")
        + b"\x00\x00\x00\x01"
    )
    assert cmpp.Report.decode(content) == cmpp.Report(5, "UNDELIV", "2611301200", "2611301201", "13800138000", 1)
    with pytest.raises(cmpp.CmppError):
        cmpp.Report.decode(content[:-1])


def test_mobile_originated_deliver_has_no_report() -> None:
    deliver = cmpp.Deliver(1, "10699000", "13800138000", "TD".encode("ascii"))
    assert cmpp.Deliver.decode(deliver.encode(1)[12:]).status_report() is None


def test_deliver_resp_active_test_and_terminate_sizes() -> None:
    raw = cmpp.DeliverResp(77).encode(4)
    assert len(raw) == 24 and cmpp.DeliverResp.decode(raw[12:]) == cmpp.DeliverResp(77, 0)
    assert cmpp.active_test(1) == struct.pack(">III", 12, 8, 1)
    assert cmpp.active_test_resp(1) == struct.pack(">III", 13, 0x80000008, 1) + b"\x00"
    assert cmpp.terminate(2) == struct.pack(">III", 12, 2, 2)
    assert cmpp.terminate_resp(2) == struct.pack(">III", 12, 0x80000002, 2)


def test_header_refuses_absurd_lengths() -> None:
    with pytest.raises(cmpp.CmppError):
        cmpp.header(struct.pack(">III", 11, 1, 1))
    with pytest.raises(cmpp.CmppError):
        cmpp.header(struct.pack(">III", 1 << 20, 1, 1))


def test_msg_id_bit_layout() -> None:
    parts = cmpp.MsgIdParts(month=11, day=30, hour=12, minute=34, second=56, gateway=0x3FFFFF, sequence=0xFFFF)
    msg_id = cmpp.make_msg_id(parts)
    assert msg_id >> 60 == 11
    assert msg_id & 0xFFFF == 0xFFFF
    assert cmpp.msg_id_parts(msg_id) == parts
    assert cmpp.make_msg_id(cmpp.MsgIdParts(1, 0, 0, 0, 0, 0, 0)) == 1 << 60
    assert cmpp.make_msg_id(cmpp.MsgIdParts(0, 0, 0, 0, 1, 0, 0)) == 1 << 38
