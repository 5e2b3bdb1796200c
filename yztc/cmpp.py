"""CMPP 3.0 (China Mobile Peer to Peer, QB-GF-028-2003 V3.0.0) messages as
bytes and back: the SP-ISMG messages of §8.4 that the notifier (an SP) and the
SMS-centre simulator (an ISMG) exchange. Pure: no I/O, no clock (the CONNECT
timestamp is passed in).

Written here because no maintained Python library does it: the PyPI
candidates are cmppy 0.3 (2017, partial, no DELIVER) and pycmpp 2.0.2 (2021,
GPL-3, blocking sockets and threads, CMPP 2.0 only). It lives in the common
package because both the notifier's client and the simulator's server use it.

Every integer is big-endian (network order). An Octet String is fixed width,
left-aligned and padded on the right with binary zeros (§8.1); decoding cuts
it at the first zero.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from dataclasses import dataclass

VERSION_30 = 0x30  # high nibble major, low nibble minor (§8.4.1.1)
HEADER_LENGTH = 12  # Total_Length, Command_Id, Sequence_Id (§8.3)
# The spec sets no limit; no SP-ISMG message here comes near it (a SUBMIT to
# 99 terminals with 140 octets of content is about 3.5 KiB).
MAX_MESSAGE_LENGTH = 8 * 1024

# Command_Id values; a response is its request's id with the top bit set.
CONNECT = 0x00000001
TERMINATE = 0x00000002
SUBMIT = 0x00000004
DELIVER = 0x00000005
QUERY = 0x00000006
CANCEL = 0x00000007
ACTIVE_TEST = 0x00000008
RESP = 0x80000000
CONNECT_RESP = CONNECT | RESP
TERMINATE_RESP = TERMINATE | RESP
SUBMIT_RESP = SUBMIT | RESP
DELIVER_RESP = DELIVER | RESP
ACTIVE_TEST_RESP = ACTIVE_TEST | RESP

# CMPP_CONNECT_RESP Status (§8.4.1.2).
CONNECT_OK = 0
CONNECT_BAD_STRUCTURE = 1
CONNECT_BAD_SOURCE_ADDR = 2
CONNECT_AUTH_FAILED = 3
CONNECT_VERSION_TOO_HIGH = 4

# CMPP_SUBMIT_RESP Result (§8.4.3.2); DELIVER_RESP shares 0-8 (§8.4.5.2).
RESULT_NAMES = {
    0: "CMPP_OK",
    1: "CMPP_BAD_STRUCTURE",
    2: "CMPP_BAD_COMMAND",
    3: "CMPP_DUPLICATE_SEQUENCE",
    4: "CMPP_BAD_LENGTH",
    5: "CMPP_BAD_FEE_CODE",
    6: "CMPP_TOO_LONG",
    7: "CMPP_BAD_SERVICE_ID",
    8: "CMPP_FLOW_CONTROL",
    9: "CMPP_NOT_SERVED",
    10: "CMPP_BAD_SRC_ID",
    11: "CMPP_BAD_MSG_SRC",
    12: "CMPP_BAD_FEE_TERMINAL_ID",
    13: "CMPP_BAD_DEST_TERMINAL_ID",
}
RESULT_OK = 0
RESULT_BAD_LENGTH = 4
RESULT_FLOW_CONTROL = 8
RESULT_BAD_DEST_TERMINAL_ID = 13

# Msg_Fmt (§8.4.3.1).
MSG_FMT_ASCII = 0
MSG_FMT_BINARY = 4
MSG_FMT_UCS2 = 8
MSG_FMT_GB = 15

# Msg_Content of a status report (DELIVER with Registered_Delivery 1, §8.4.5.1):
# Msg_Id 8, Stat 7, Submit_time 10, Done_time 10, Dest_terminal_Id 32, SMSC_sequence 4.
REPORT_LENGTH = 71


class CmppError(ValueError):
    """Bytes that are not a well-formed CMPP 3.0 message."""


def result_name(result: int) -> str:
    return RESULT_NAMES.get(result, f"CMPP_RESULT_{result}")


# -- field helpers -------------------------------------------------------------


def _octets(value: str | bytes, width: int, name: str) -> bytes:
    raw = value.encode("ascii") if isinstance(value, str) else value
    if len(raw) > width:
        raise CmppError(f"{name} is longer than {width} octets")
    return raw.ljust(width, b"\x00")


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace")


class _Reader:
    def __init__(self, body: bytes) -> None:
        self._body = body
        self._at = 0

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._body):
            raise CmppError("message body is shorter than its fields")
        out = self._body[self._at : self._at + n]
        self._at += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def text(self, n: int) -> str:
        return _text(self.take(n))

    def end(self) -> None:
        if self._at != len(self._body):
            raise CmppError("message body is longer than its fields")


# -- header and framing --------------------------------------------------------


@dataclass(frozen=True)
class Header:
    total_length: int
    command_id: int
    sequence_id: int


def message(command_id: int, sequence_id: int, body: bytes = b"") -> bytes:
    """A whole message: the 12-octet header (§8.3) then `body`."""
    return struct.pack(">III", HEADER_LENGTH + len(body), command_id, sequence_id) + body


def header(raw: bytes) -> Header:
    """The header of the 12 octets `raw`; Total_Length is checked for sanity."""
    if len(raw) != HEADER_LENGTH:
        raise CmppError("a header is 12 octets")
    total, command_id, sequence_id = struct.unpack(">III", raw)
    if not HEADER_LENGTH <= total <= MAX_MESSAGE_LENGTH:
        raise CmppError(f"Total_Length {total} out of range")
    return Header(total, command_id, sequence_id)


# -- CMPP_CONNECT / _RESP (§8.4.1) -----------------------------------------------


def timestamp(now: dt.datetime) -> int:
    """The Timestamp of a CONNECT: MMDDHHMMSS of `now` as an integer (§8.4.1.1)."""
    return int(now.strftime("%m%d%H%M%S"))


def authenticator_source(source_addr: str, shared_secret: str, timestamp_: int) -> bytes:
    """MD5(Source_Addr + 9 zero octets + shared secret + MMDDHHMMSS), 16 octets (§8.4.1.1).
    The timestamp is written as 10 digits, zero-padded (as SMSGate and gocmpp do)."""
    return hashlib.md5(
        source_addr.encode("ascii") + b"\x00" * 9 + shared_secret.encode("utf-8") + f"{timestamp_:010d}".encode("ascii")
    ).digest()


def authenticator_ismg(status: int, authenticator_source_: bytes, shared_secret: str) -> bytes:
    """MD5(Status + AuthenticatorSource + shared secret), Status as its 4 octets (§8.4.1.2)."""
    return hashlib.md5(struct.pack(">I", status) + authenticator_source_ + shared_secret.encode("utf-8")).digest()


@dataclass(frozen=True)
class Connect:
    source_addr: str  # SP_Id, the SP's enterprise code: 6 octets
    authenticator_source: bytes  # 16 octets
    version: int
    timestamp: int  # MMDDHHMMSS as an integer

    @classmethod
    def signed(cls, source_addr: str, shared_secret: str, timestamp_: int, version: int = VERSION_30) -> Connect:
        return cls(source_addr, authenticator_source(source_addr, shared_secret, timestamp_), version, timestamp_)

    def encode(self, sequence_id: int) -> bytes:
        if len(self.authenticator_source) != 16:
            raise CmppError("AuthenticatorSource is 16 octets")
        body = (
            _octets(self.source_addr, 6, "Source_Addr")
            + self.authenticator_source
            + struct.pack(">BI", self.version, self.timestamp)
        )
        return message(CONNECT, sequence_id, body)

    @classmethod
    def decode(cls, body: bytes) -> Connect:
        r = _Reader(body)
        out = cls(r.text(6), r.take(16), r.u8(), r.u32())
        r.end()
        return out

    def verify(self, shared_secret: str) -> bool:
        return authenticator_source(self.source_addr, shared_secret, self.timestamp) == self.authenticator_source


@dataclass(frozen=True)
class ConnectResp:
    status: int  # 4 octets in 3.0 (1 in 2.0)
    authenticator_ismg: bytes  # 16 octets; zeros when authentication failed
    version: int

    def encode(self, sequence_id: int) -> bytes:
        body = (
            struct.pack(">I", self.status)
            + _octets(self.authenticator_ismg, 16, "AuthenticatorISMG")
            + bytes([self.version])
        )
        return message(CONNECT_RESP, sequence_id, body)

    @classmethod
    def decode(cls, body: bytes) -> ConnectResp:
        r = _Reader(body)
        out = cls(r.u32(), r.take(16), r.u8())
        r.end()
        return out


# -- CMPP_SUBMIT / _RESP (§8.4.3) ------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """One SMS (or one part of a long one) for one or more terminals.

    `msg_content` is at most 140 octets for Msg_Fmt 8 (§8.4.3.1, Msg_Length);
    with TP_udhi 1 it begins with the 3GPP TS 23.040 User Data Header."""

    dest_terminal_ids: tuple[str, ...]  # MSISDNs, 32 octets each, fewer than 100
    msg_content: bytes
    src_id: str  # the number the handset shows as the sender: 21 octets
    msg_src: str  # SP_Id: 6 octets
    service_id: str = ""  # 10 octets
    pk_total: int = 1
    pk_number: int = 1
    registered_delivery: int = 1
    msg_level: int = 0
    fee_user_type: int = 0
    fee_terminal_id: str = ""
    fee_terminal_type: int = 0
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = MSG_FMT_UCS2
    fee_type: str = "01"  # free of charge to the charged number
    fee_code: str = "000000"  # in fen
    valid_time: str = ""  # SMPP 3.3 time format, 17 octets
    at_time: str = ""
    dest_terminal_type: int = 0  # 0: real number, 1: pseudonym
    link_id: str = ""  # 20 octets, for on-demand services only
    msg_id: int = 0  # the SP leaves it 0; the ISMG answers with one

    def encode(self, sequence_id: int) -> bytes:
        if not 1 <= len(self.dest_terminal_ids) < 100:
            raise CmppError("DestUsr_tl is 1 to 99")
        if len(self.msg_content) > 255:
            raise CmppError("Msg_Content is longer than Msg_Length can say")
        body = b"".join(
            [
                struct.pack(
                    ">QBBBB", self.msg_id, self.pk_total, self.pk_number, self.registered_delivery, self.msg_level
                ),
                _octets(self.service_id, 10, "Service_Id"),
                bytes([self.fee_user_type]),
                _octets(self.fee_terminal_id, 32, "Fee_terminal_Id"),
                bytes([self.fee_terminal_type, self.tp_pid, self.tp_udhi, self.msg_fmt]),
                _octets(self.msg_src, 6, "Msg_src"),
                _octets(self.fee_type, 2, "FeeType"),
                _octets(self.fee_code, 6, "FeeCode"),
                _octets(self.valid_time, 17, "ValId_Time"),
                _octets(self.at_time, 17, "At_Time"),
                _octets(self.src_id, 21, "Src_Id"),
                bytes([len(self.dest_terminal_ids)]),
                *(_octets(d, 32, "Dest_terminal_Id") for d in self.dest_terminal_ids),
                bytes([self.dest_terminal_type, len(self.msg_content)]),
                self.msg_content,
                _octets(self.link_id, 20, "LinkID"),
            ]
        )
        return message(SUBMIT, sequence_id, body)

    @classmethod
    def decode(cls, body: bytes) -> Submit:
        r = _Reader(body)
        msg_id, pk_total, pk_number, registered_delivery, msg_level = r.u64(), r.u8(), r.u8(), r.u8(), r.u8()
        service_id, fee_user_type, fee_terminal_id = r.text(10), r.u8(), r.text(32)
        fee_terminal_type, tp_pid, tp_udhi, msg_fmt = r.u8(), r.u8(), r.u8(), r.u8()
        msg_src, fee_type, fee_code = r.text(6), r.text(2), r.text(6)
        valid_time, at_time, src_id = r.text(17), r.text(17), r.text(21)
        dests = tuple(r.text(32) for _ in range(r.u8()))
        dest_terminal_type, length = r.u8(), r.u8()
        content = r.take(length)
        link_id = r.text(20)
        r.end()
        return cls(
            dests,
            content,
            src_id,
            msg_src,
            service_id,
            pk_total,
            pk_number,
            registered_delivery,
            msg_level,
            fee_user_type,
            fee_terminal_id,
            fee_terminal_type,
            tp_pid,
            tp_udhi,
            msg_fmt,
            fee_type,
            fee_code,
            valid_time,
            at_time,
            dest_terminal_type,
            link_id,
            msg_id,
        )


@dataclass(frozen=True)
class SubmitResp:
    msg_id: int  # 8 octets, the ISMG's id for the message (the report names it)
    result: int  # 4 octets in 3.0; 8 = flow control

    def encode(self, sequence_id: int) -> bytes:
        return message(SUBMIT_RESP, sequence_id, struct.pack(">QI", self.msg_id, self.result))

    @classmethod
    def decode(cls, body: bytes) -> SubmitResp:
        r = _Reader(body)
        out = cls(r.u64(), r.u32())
        r.end()
        return out


# -- CMPP_DELIVER / _RESP (§8.4.5) -----------------------------------------------


@dataclass(frozen=True)
class Report:
    """The Msg_Content of a status report (§8.4.5.1, table 1 for Stat)."""

    msg_id: int  # the Msg_Id of the SUBMIT_RESP it reports on
    stat: str  # DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD, or e.g. "MA:0001"
    submit_time: str  # YYMMDDHHMM
    done_time: str  # YYMMDDHHMM
    dest_terminal_id: str  # 32 octets
    smsc_sequence: int = 0

    def encode(self) -> bytes:
        return (
            struct.pack(">Q", self.msg_id)
            + _octets(self.stat, 7, "Stat")
            + _octets(self.submit_time, 10, "Submit_time")
            + _octets(self.done_time, 10, "Done_time")
            + _octets(self.dest_terminal_id, 32, "Dest_terminal_Id")
            + struct.pack(">I", self.smsc_sequence)
        )

    @classmethod
    def decode(cls, content: bytes) -> Report:
        # Sized by what came: some gateways still send the 60-octet CMPP 2.0
        # layout (Dest_terminal_Id 21) on a 3.0 link.
        if len(content) == 60:
            dest_width = 21
        elif len(content) == REPORT_LENGTH:
            dest_width = 32
        else:
            raise CmppError(f"a status report is {REPORT_LENGTH} octets, not {len(content)}")
        r = _Reader(content)
        out = cls(r.u64(), r.text(7), r.text(10), r.text(10), r.text(dest_width), r.u32())
        r.end()
        return out


@dataclass(frozen=True)
class Deliver:
    """A mobile-originated SMS, or (registered_delivery 1) a status report whose
    Msg_Content is a `Report`."""

    msg_id: int
    dest_id: str  # the SP's service code: 21 octets
    src_terminal_id: str  # the handset (for a report: the SUBMIT's destination), 32 octets
    msg_content: bytes
    registered_delivery: int = 0
    service_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = MSG_FMT_ASCII
    src_terminal_type: int = 0
    link_id: str = ""

    @classmethod
    def report(cls, msg_id: int, dest_id: str, report: Report, service_id: str = "") -> Deliver:
        return cls(
            msg_id, dest_id, report.dest_terminal_id, report.encode(), registered_delivery=1, service_id=service_id
        )

    def status_report(self) -> Report | None:
        """The report this carries, or None for a mobile-originated SMS."""
        return Report.decode(self.msg_content) if self.registered_delivery == 1 else None

    def encode(self, sequence_id: int) -> bytes:
        if len(self.msg_content) > 255:
            raise CmppError("Msg_Content is longer than Msg_Length can say")
        body = (
            struct.pack(">Q", self.msg_id)
            + _octets(self.dest_id, 21, "Dest_Id")
            + _octets(self.service_id, 10, "Service_Id")
            + bytes([self.tp_pid, self.tp_udhi, self.msg_fmt])
            + _octets(self.src_terminal_id, 32, "Src_terminal_Id")
            + bytes([self.src_terminal_type, self.registered_delivery, len(self.msg_content)])
            + self.msg_content
            + _octets(self.link_id, 20, "LinkID")
        )
        return message(DELIVER, sequence_id, body)

    @classmethod
    def decode(cls, body: bytes) -> Deliver:
        r = _Reader(body)
        msg_id, dest_id, service_id = r.u64(), r.text(21), r.text(10)
        tp_pid, tp_udhi, msg_fmt = r.u8(), r.u8(), r.u8()
        src_terminal_id, src_terminal_type, registered_delivery = r.text(32), r.u8(), r.u8()
        content = r.take(r.u8())
        link_id = r.text(20)
        r.end()
        return cls(
            msg_id,
            dest_id,
            src_terminal_id,
            content,
            registered_delivery,
            service_id,
            tp_pid,
            tp_udhi,
            msg_fmt,
            src_terminal_type,
            link_id,
        )


@dataclass(frozen=True)
class DeliverResp:
    msg_id: int  # the DELIVER's Msg_Id
    result: int = RESULT_OK

    def encode(self, sequence_id: int) -> bytes:
        return message(DELIVER_RESP, sequence_id, struct.pack(">QI", self.msg_id, self.result))

    @classmethod
    def decode(cls, body: bytes) -> DeliverResp:
        r = _Reader(body)
        out = cls(r.u64(), r.u32())
        r.end()
        return out


# -- bodiless and tiny messages (§8.4.2, §8.4.7) -----------------------------------


def active_test(sequence_id: int) -> bytes:
    return message(ACTIVE_TEST, sequence_id)


def active_test_resp(sequence_id: int) -> bytes:
    return message(ACTIVE_TEST_RESP, sequence_id, b"\x00")  # Reserved, 1 octet


def terminate(sequence_id: int) -> bytes:
    return message(TERMINATE, sequence_id)


def terminate_resp(sequence_id: int) -> bytes:
    return message(TERMINATE_RESP, sequence_id)


# -- Msg_Id (§8.4.3.2) ---------------------------------------------------------------


@dataclass(frozen=True)
class MsgIdParts:
    month: int
    day: int
    hour: int
    minute: int
    second: int
    gateway: int  # 22 bits: the ISMG's code
    sequence: int  # 16 bits, wraps


def make_msg_id(p: MsgIdParts) -> int:
    """The 64-bit Msg_Id: month bits 64-61, day 60-56, hour 55-51, minute 50-45,
    second 44-39, gateway code 38-17, sequence 16-1 (§8.4.3.2)."""
    return (
        (p.month & 0xF) << 60
        | (p.day & 0x1F) << 55
        | (p.hour & 0x1F) << 50
        | (p.minute & 0x3F) << 44
        | (p.second & 0x3F) << 38
        | (p.gateway & 0x3FFFFF) << 16
        | (p.sequence & 0xFFFF)
    )


def msg_id_parts(msg_id: int) -> MsgIdParts:
    return MsgIdParts(
        msg_id >> 60 & 0xF,
        msg_id >> 55 & 0x1F,
        msg_id >> 50 & 0x1F,
        msg_id >> 44 & 0x3F,
        msg_id >> 38 & 0x3F,
        msg_id >> 16 & 0x3FFFFF,
        msg_id & 0xFFFF,
    )
