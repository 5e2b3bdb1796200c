"""An SMS centre: takes messages for delivery (SMPP 3.4, see smpp_server.py;
and plain HTTP for quick manual tries), joins concatenated parts as a
handset would, sends delivery receipts, and lets tests read what reached
each phone. The inspection API is the CONTRACT's.

    GET    /messages?dest=<phone>  {"messages": [{"source", "dest", "text",
                                    "segments", "received_at"}]}, oldest first,
                                    `text` joined from all parts
    DELETE /messages            forget everything received (test hook) -> 204
    POST   /submit              {"source", "dest", "text"} -> 200 {"message_id", "segments"}
    GET    /sim/submits?dest=   every submit_sm as received (test hook): PDU fields,
                                UDH, the answer given, time received
    GET    /sim/smpp            session counters (binds, enquire_links, drops, receipts)

How the centre misbehaves comes from the scenario's `sms_centre` section
(simulators/scenario.py: SmsCentreBehaviour), its receipt habits included:
its ids are 32-bit numbers written in lower-case hex without leading zeros
(`next_message_id`; counting 1..N with `message_id_wrap`), which receipts
write as `receipt_id_format` says (`written_id`), for the parts `receipts`
names (`gets_receipt`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aiohttp import web

from simulators.faults import delay, refusal
from simulators.http_json import PHONE, json_object, json_response, string_field
from simulators.scenario import Scenario

log = logging.getLogger("simulators.sms_centre")

# One UCS-2 SMS holds 70 UTF-16 units; once split, each part loses 3 units
# (6 bytes) to the concatenation header and holds 67.
_SINGLE_UNITS = 70
_PART_UNITS = 67

# SMPP 3.4 command_status values the centre answers with.
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RTHROTTLED = 0x58
STATUS_NAMES = {
    ESME_ROK: "ESME_ROK",
    ESME_RINVMSGLEN: "ESME_RINVMSGLEN",
    ESME_RSYSERR: "ESME_RSYSERR",
    ESME_RINVDSTADR: "ESME_RINVDSTADR",
    ESME_RTHROTTLED: "ESME_RTHROTTLED",
}

_UDHI = 0x40
_TLV_SAR_MSG_REF_NUM = 0x020C
_TLV_SAR_TOTAL_SEGMENTS = 0x020E
_TLV_SAR_SEGMENT_SEQNUM = 0x020F
_TLV_MESSAGE_PAYLOAD = 0x0424


def ucs2_segments(text: str) -> int:
    """How many SMS parts `text` needs in UCS-2."""
    # UTF-16 units, not characters: an emoji outside the BMP takes two.
    units = len(text.encode("utf-16-be")) // 2
    return 1 if units <= _SINGLE_UNITS else math.ceil(units / _PART_UNITS)


@dataclass(frozen=True)
class Message:
    source: str
    dest: str
    text: str
    segments: int
    received_at: str


@dataclass(frozen=True)
class SubmitSm:
    """The fields of a submit_sm the centre looks at."""

    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    tlvs: dict[int, bytes]


@dataclass(frozen=True)
class Concatenation:
    ref: int
    total: int
    seq: int


@dataclass(frozen=True)
class UserData:
    udh: bytes | None
    concatenation: Concatenation | None
    body: bytes


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt to send back to the ESME that submitted the part."""

    smsc_message_id: str  # as submit_sm_resp gave it (hex)
    handset: str  # the part's destination: the receipt comes "from" it
    to: str  # the part's source address
    stat: str  # DELIVRD or UNDELIV
    submitted_at: dt.datetime
    session: int
    written_id: str = ""  # the id as SMPP receipts write it (receipt_id_format)

    def local_time(self, at: dt.datetime) -> str:
        """A receipt date (YYMMDDhhmm) in the centre's local time, China Standard Time."""
        return at.astimezone(CHINA).strftime("%y%m%d%H%M")


CHINA = dt.timezone(dt.timedelta(hours=8))
# SMPP message_state (§5.2.28) of what query_sm is asked about.
MESSAGE_STATES = {"DELIVRD": 2, "UNDELIV": 5}


def written_id(message_id: str, receipt_id_format: str) -> str:
    """How a receipt writes the (hex) id submit_sm_resp gave: the scenario's
    `receipt_id_format`."""
    if receipt_id_format == "decimal":
        return f"{int(message_id, 16):010d}"
    if receipt_id_format == "hex_upper_padded":
        return f"{int(message_id, 16):08X}"
    if receipt_id_format == "upper":
        return message_id.upper()
    return message_id


def gets_receipt(concatenation: Concatenation | None, receipts: str) -> bool:
    """Whether a part gets a receipt under the scenario's `receipts`."""
    if receipts == "none":
        return False
    if concatenation is None or receipts == "each_part":
        return True
    if receipts == "first_part":
        return concatenation.seq == 1
    return concatenation.seq == concatenation.total  # last_part


@dataclass(frozen=True)
class Answer:
    """What to do with a submit_sm: drop the connection unanswered, or answer."""

    drop: bool = False
    command_status: int = ESME_ROK
    message_id: str = ""
    receipt: Receipt | None = None


class MalformedUserData(ValueError):
    pass


def user_data(esm_class: int, short_message: bytes, tlvs: dict[int, bytes]) -> UserData:
    """The UDH, concatenation info (UDH element 0x00 or 0x08, or SAR TLVs) and body of a part."""
    body = tlvs.get(_TLV_MESSAGE_PAYLOAD, short_message)
    udh = None
    concatenation = None
    if esm_class & _UDHI:
        if not body or body[0] + 1 > len(body):
            raise MalformedUserData("UDH longer than the message")
        udh, body = body[: body[0] + 1], body[body[0] + 1 :]
        i = 1
        while i + 1 < len(udh):
            iei, length = udh[i], udh[i + 1]
            value = udh[i + 2 : i + 2 + length]
            if len(value) != length:
                raise MalformedUserData("truncated UDH element")
            if iei == 0x00 and length == 3:
                concatenation = Concatenation(value[0], value[1], value[2])
            elif iei == 0x08 and length == 4:
                concatenation = Concatenation(int.from_bytes(value[:2], "big"), value[2], value[3])
            i += 2 + length
    elif _TLV_SAR_MSG_REF_NUM in tlvs:
        concatenation = Concatenation(
            int.from_bytes(tlvs[_TLV_SAR_MSG_REF_NUM], "big"),
            tlvs.get(_TLV_SAR_TOTAL_SEGMENTS, b"\x01")[0],
            tlvs.get(_TLV_SAR_SEGMENT_SEQNUM, b"\x01")[0],
        )
    if concatenation and not 1 <= concatenation.seq <= concatenation.total:
        raise MalformedUserData("segment number out of range")
    return UserData(udh, concatenation, body)


def decode_text(data_coding: int, body: bytes) -> str:
    if data_coding == 8:  # UCS-2, as handsets read it: UTF-16 big-endian
        return body.decode("utf-16-be", errors="replace")
    # 0 (SMSC default alphabet), 1 (IA5/ASCII), 3 (Latin-1): near enough for a simulator.
    return body.decode("latin-1")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SmsCentre:
    """What the centre has received and how it answers; shared by its HTTP
    and SMPP faces."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        rng: random.Random | None = None,
        now: Callable[[], dt.datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.behaviour = scenario.sms_centre
        self.rng = rng or random.Random()
        self.now = now
        self._monotonic = monotonic
        self.messages: list[Message] = []
        self.submits: list[dict] = []
        self.counters: Counter[str] = Counter()
        self._partial: dict[tuple[str, str, int, int], dict[int, bytes]] = {}
        self._received = 0  # submit_sm since start; the scenario's ordinals count these
        self._throttled_until = 0.0
        self._second = -1
        self._in_second = 0
        # The centre's ids: 32-bit numbers written in hex. Without a wrap
        # they count on from a random start (never repeating in a run, and
        # unlikely to repeat an earlier run's); with one they count 1..N.
        self._ids = 0 if self.behaviour.message_id_wrap else self.rng.randrange(1, 1 << 30)
        # What query_sm answers: each id's last fate, the newest 100 000.
        self.fates: OrderedDict[str, str] = OrderedDict()

    def clear(self) -> None:
        self.messages.clear()
        self.submits.clear()
        self._partial.clear()

    def _stamp(self) -> str:
        return self.now().astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def record(self, source: str, dest: str, text: str, segments: int) -> Message:
        message = Message(source, dest, text, segments, self._stamp())
        self.messages.append(message)
        return message

    # -- SMPP ---------------------------------------------------------------------

    def on_submit(self, pdu: SubmitSm, session: int) -> Answer:
        self._received += 1
        ordinal = self._received
        answer = self._answer(pdu, ordinal, session)
        try:
            udh = user_data(pdu.esm_class, pdu.short_message, pdu.tlvs).udh
        except MalformedUserData:
            udh = None
        self.submits.append(
            {
                "at": self.now().timestamp(),
                "ordinal": ordinal,
                "session": session,
                "source": pdu.source_addr,
                "source_ton": pdu.source_addr_ton,
                "source_npi": pdu.source_addr_npi,
                "dest": pdu.destination_addr,
                "dest_ton": pdu.dest_addr_ton,
                "dest_npi": pdu.dest_addr_npi,
                "esm_class": pdu.esm_class,
                "data_coding": pdu.data_coding,
                "registered_delivery": pdu.registered_delivery,
                "udh": udh.hex() if udh else None,
                "status": "dropped"
                if answer.drop
                else STATUS_NAMES.get(answer.command_status, hex(answer.command_status)),
                "message_id": answer.message_id or None,
            }
        )
        self.counters["submit_sm"] += 1
        self.counters["dropped" if answer.drop else STATUS_NAMES.get(answer.command_status, "other")] += 1
        return answer

    def _answer(self, pdu: SubmitSm, ordinal: int, session: int) -> Answer:
        b = self.behaviour
        if ordinal in b.drop_at:
            log.info("dropping the connection", extra={"fields": {"ordinal": ordinal}})
            return Answer(drop=True)
        mono = self._monotonic()
        for spell in b.throttle:
            if ordinal == spell.after + 1:
                self._throttled_until = max(self._throttled_until, mono + spell.for_ms / 1000)
        if mono < self._throttled_until:
            return Answer(command_status=ESME_RTHROTTLED)
        if b.max_per_second:
            second = int(self.now().timestamp())
            if second != self._second:
                self._second, self._in_second = second, 0
            self._in_second += 1
            if self._in_second > b.max_per_second:
                return Answer(command_status=ESME_RTHROTTLED)
        if b.fail_rate and self.rng.random() < b.fail_rate:
            return Answer(command_status=ESME_RSYSERR)
        if not PHONE.fullmatch(pdu.destination_addr):
            return Answer(command_status=ESME_RINVDSTADR)
        try:
            data = user_data(pdu.esm_class, pdu.short_message, pdu.tlvs)
        except MalformedUserData:
            return Answer(command_status=ESME_RINVMSGLEN)
        message_id = self.next_message_id()
        self._join(pdu, data)
        stat = "UNDELIV" if pdu.destination_addr in b.undeliverable else "DELIVRD"
        self.fates[message_id] = stat
        self.fates.move_to_end(message_id)
        while len(self.fates) > 100_000:
            self.fates.popitem(last=False)
        receipt = None
        if pdu.registered_delivery & 0x03 and gets_receipt(data.concatenation, b.receipts):
            receipt = Receipt(
                message_id,
                pdu.destination_addr,
                pdu.source_addr,
                stat,
                self.now(),
                session,
                written_id(message_id, b.receipt_id_format),
            )
        return Answer(message_id=message_id, receipt=receipt)

    def next_message_id(self) -> str:
        """The next id, lower-case hex without leading zeros (so each
        receipt_id_format writes it differently)."""
        wrap = self.behaviour.message_id_wrap
        if wrap:
            self._ids = self._ids % wrap + 1
        else:
            self._ids = self._ids % 0xFFFFFFFF + 1
        return format(self._ids, "x")

    def _join(self, pdu: SubmitSm, data: UserData) -> None:
        """Keeps the part; records the message once every part is in, as a handset shows it."""
        c = data.concatenation
        if c is None or c.total == 1:
            message = self.record(pdu.source_addr, pdu.destination_addr, decode_text(pdu.data_coding, data.body), 1)
        else:
            key = (pdu.source_addr, pdu.destination_addr, c.ref, c.total)
            parts = self._partial.setdefault(key, {})
            # A part received again (resent after a lost answer) replaces
            # itself: handsets show a concatenated message once.
            parts[c.seq] = data.body
            if len(parts) < c.total:
                return
            del self._partial[key]
            body = b"".join(parts[seq] for seq in range(1, c.total + 1))
            message = self.record(pdu.source_addr, pdu.destination_addr, decode_text(pdu.data_coding, body), c.total)
        # Neither the phone nor the text is logged: the text carries codes and counts.
        log.debug("sms received", extra={"fields": {"segments": message.segments}})


CENTRE = web.AppKey("centre", SmsCentre)


def create_app(
    scenario: Scenario,
    *,
    rng: random.Random | None = None,
    now: Callable[[], dt.datetime] = _utc_now,
    centre: SmsCentre | None = None,
) -> web.Application:
    """The HTTP face; pass the `centre` the SMPP server feeds to inspect what came over SMPP."""
    app = web.Application()
    app[CENTRE] = centre or SmsCentre(scenario, rng=rng, now=now)
    app.router.add_post("/submit", _submit)
    app.router.add_get("/messages", _messages)
    app.router.add_delete("/messages", _clear)
    app.router.add_get("/sim/submits", _submits)
    app.router.add_get("/sim/smpp", _smpp_counters)
    return app


async def _submit(request: web.Request) -> web.Response:
    centre = request.app[CENTRE]
    if (refused := refusal(centre.behaviour, centre.rng)) is not None:
        return refused
    body = await json_object(request)
    source = string_field(body, "source")
    dest = string_field(body, "dest", PHONE)
    text = string_field(body, "text")
    await delay(centre.behaviour)
    message_id = secrets.token_hex(8)
    message = centre.record(source, dest, text, ucs2_segments(text))
    log.info("sms accepted", extra={"fields": {"message_id": message_id, "segments": message.segments}})
    return json_response({"message_id": message_id, "segments": message.segments})


async def _messages(request: web.Request) -> web.Response:
    dest = request.query.get("dest")
    found = [asdict(m) for m in request.app[CENTRE].messages if dest is None or m.dest == dest]
    return json_response({"messages": found})


async def _clear(request: web.Request) -> web.Response:
    request.app[CENTRE].clear()
    return web.Response(status=204)


async def _submits(request: web.Request) -> web.Response:
    dest = request.query.get("dest")
    found = [s for s in request.app[CENTRE].submits if dest is None or s["dest"] == dest]
    return json_response({"submits": found})


async def _smpp_counters(request: web.Request) -> web.Response:
    return json_response(dict(request.app[CENTRE].counters))
