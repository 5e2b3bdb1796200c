"""The SMS centre's SMPP 3.4 face: ESMEs bind (transceiver, transmitter or
receiver) with the configured system id and password, submit_sm is answered
as the centre decides (sms_centre.SmsCentre.on_submit), enquire_link and
unbind are answered, query_sm says how a message ended (DELIVERED or
UNDELIVERABLE; ESME_RQUERYFAIL for an id it does not know), and delivery
receipts go back as deliver_sm with the receipt esm_class, on the submitting
session or, if it has gone, on the next session of the same system id (as a
real centre keeps receipts until the ESME binds again). With
YZTC_SIM_SMPP_TLS_CERT_FILE/_KEY_FILE it speaks SMPP over TLS only.

The scenario's receipt habits (`sms_centre`): `receipt_id_format` (the id as
receipts write it, in the text and in receipted_message_id), `receipt_tlvs`
(false: the text form only), `receipts` (which parts get one),
`receipt_before_resp` (the deliver_sm written ahead of the submit_sm_resp),
`message_id_wrap` (ids count 1..N). Receipt dates are China Standard Time.

Written on asyncio streams with smpp34's PDU codec (submit_sm decoded,
deliver_sm encoded by it; the small fixed PDUs — bind, responses — are a
header and a few C-strings, framed here), not on smpp34's own `Server`: the
simulator has to refuse a wrong password, and to drop a connection at an
exact PDU, neither of which that server offers from Python (it accepts
every bind, and closes sessions only by unbind).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import struct

import smpp34

from simulators.centre_server import CentreServer, close_after_written, close_session
from simulators.sms_centre import MESSAGE_STATES, Receipt, SmsCentre, SubmitSm

log = logging.getLogger("simulators.smpp")

BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER = 0x01, 0x02, 0x09
QUERY_SM, SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x03, 0x04, 0x05, 0x06, 0x15
GENERIC_NACK = 0x80000000
RESP = 0x80000000

ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RQUERYFAIL = 0x67

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
_MAX_PDU = 64 * 1024


def _pdu(command_id: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def _c_strings(body: bytes, count: int) -> tuple[list[str], bytes]:
    out = []
    for _ in range(count):
        value, _, body = body.partition(b"\x00")
        out.append(value.decode("latin-1"))
    return out, body


def _receipt_text(receipt: Receipt, done: dt.datetime) -> bytes:
    # SMPP 3.4 Appendix B, dates in the centre's local time (China). No
    # "text:" excerpt: it would copy message content around.
    return (
        f"id:{receipt.written_id or receipt.smsc_message_id} sub:001 "
        f"dlvrd:{'001' if receipt.stat == 'DELIVRD' else '000'} "
        f"submit date:{receipt.local_time(receipt.submitted_at)} done date:{receipt.local_time(done)} "
        f"stat:{receipt.stat} err:{'000' if receipt.stat == 'DELIVRD' else '001'} text:"
    ).encode("ascii")


class SmppServer(CentreServer["_Session"]):
    def __init__(self, centre: SmsCentre, system_id: str, password: str) -> None:
        super().__init__(centre, "smpp-receipts")
        self._system_id = system_id
        self._password = password

    def _new_session(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Session:
        return _Session(self, number, reader, writer)

    async def _deliver(self, session: _Session, receipt: Receipt) -> bool:
        return await session.deliver_receipt(receipt)

    # -- binds ------------------------------------------------------------------

    def bind_status(self, system_id: str, password: str) -> int:
        if self.centre.behaviour.down:
            return ESME_RBINDFAIL
        if system_id != self._system_id:
            return ESME_RINVSYSID
        if password != self._password:
            return ESME_RINVPASWD
        return ESME_ROK

    def bound(self, session: _Session) -> None:
        self.centre.counters["binds"] += 1
        log.info("bound", extra={"fields": {"session": session.number, "system_id": session.system_id}})
        self.wake_receipts()  # receipts kept for this ESME can go now


class _Session:
    def __init__(
        self, server: SmppServer, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.number = number
        self._reader = reader
        self._writer = writer
        self.system_id = ""
        self._bind: int | None = None
        self._seq = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._closed = False

    @property
    def can_receive(self) -> bool:
        return not self._closed and self._bind in (BIND_TRANSCEIVER, BIND_RECEIVER)

    @property
    def can_submit(self) -> bool:
        return self._bind in (BIND_TRANSCEIVER, BIND_TRANSMITTER)

    def close(self) -> None:
        self._closed = True
        close_session(self._waiting, self._writer)

    async def serve(self) -> None:
        centre = self.server.centre
        try:
            while not self._closed:
                header = await self._reader.readexactly(16)
                length, command_id, status, seq = struct.unpack(">IIII", header)
                if not 16 <= length <= _MAX_PDU:
                    centre.counters["bad_pdus"] += 1
                    return
                body = await self._reader.readexactly(length - 16)
                if command_id in (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER):
                    if not self._on_bind(command_id, seq, body):
                        await self._writer.drain()
                        return
                elif command_id == ENQUIRE_LINK:
                    centre.counters["enquire_links"] += 1
                    self._writer.write(_pdu(ENQUIRE_LINK | RESP, ESME_ROK, seq))
                elif command_id == UNBIND:
                    self._writer.write(_pdu(UNBIND | RESP, ESME_ROK, seq))
                    await self._writer.drain()
                    centre.counters["unbinds"] += 1
                    return
                elif command_id == SUBMIT_SM:
                    if not await self._on_submit(seq, header + body):
                        await self._drop()
                        return
                elif command_id == QUERY_SM:
                    self._on_query(seq, body)
                elif command_id in (DELIVER_SM | RESP, GENERIC_NACK):
                    future = self._waiting.pop(seq, None)
                    if future is not None and not future.done():
                        future.set_result(status if command_id != GENERIC_NACK else status or -1)
                elif command_id & RESP:
                    pass  # enquire_link_resp and the like: nothing to do
                else:
                    self._writer.write(_pdu(GENERIC_NACK, ESME_RINVCMDID, seq))
                await self._writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.close()

    def _on_bind(self, command_id: int, seq: int, body: bytes) -> bool:
        (system_id, password), _ = _c_strings(body, 2)
        status = ESME_RALYBND if self._bind is not None else self.server.bind_status(system_id, password)
        self._writer.write(_pdu(command_id | RESP, status, seq, b"YZTCSIM\x00"))
        if status != ESME_ROK:
            self.server.centre.counters["bind_failures"] += 1
            log.warning("bind refused", extra={"fields": {"session": self.number, "status": status}})
            return False
        self.system_id = system_id
        self._bind = command_id
        self.server.bound(self)
        return True

    async def _on_submit(self, seq: int, raw: bytes) -> bool:
        """False: drop the connection now, leaving this PDU unanswered."""
        if not self.can_submit:
            self._writer.write(_pdu(SUBMIT_SM | RESP, ESME_RINVBNDSTS, seq, b"\x00"))
            return True
        decoded = smpp34.decode(raw)
        pdu = SubmitSm(
            decoded.source_addr,
            decoded.source_addr_ton,
            decoded.source_addr_npi,
            decoded.destination_addr,
            decoded.dest_addr_ton,
            decoded.dest_addr_npi,
            decoded.esm_class,
            decoded.data_coding,
            decoded.registered_delivery,
            decoded.short_message,
            {t.tag: t.value for t in decoded.tlvs},
        )
        answer = self.server.centre.on_submit(pdu, self.number)
        if answer.drop:
            return False
        if self.server.centre.behaviour.latency_ms:
            await asyncio.sleep(self.server.centre.behaviour.latency_ms / 1000)
        body = answer.message_id.encode("ascii") + b"\x00"
        if answer.receipt is not None and self.server.centre.behaviour.receipt_before_resp:
            # Written ahead of the submit_sm_resp; its deliver_sm_resp is
            # awaited aside, as this loop must go on reading to see it.
            sent = self._write_receipt(answer.receipt)
            self._writer.write(_pdu(SUBMIT_SM | RESP, answer.command_status, seq, body))
            self.server.track(asyncio.create_task(self._ack_or_requeue(answer.receipt, *sent)))
            return True
        self._writer.write(_pdu(SUBMIT_SM | RESP, answer.command_status, seq, body))
        if answer.receipt is not None:
            self.server.queue_receipt(answer.receipt)
        return True

    def _on_query(self, seq: int, body: bytes) -> None:
        """query_sm (§4.8.1): the message's state, DELIVERED or UNDELIVERABLE,
        with a final date; an id the centre does not know: ESME_RQUERYFAIL."""
        self.server.centre.counters["query_sm"] += 1
        (message_id,), _ = _c_strings(body, 1)
        fate = self.server.centre.fates.get(message_id) if self.can_submit else None
        if fate is None:
            self._writer.write(_pdu(QUERY_SM | RESP, ESME_RQUERYFAIL, seq, b"\x00\x00\x00\x00"))
            return
        final_date = self.server.centre.now().astimezone(dt.UTC).strftime("%y%m%d%H%M%S") + "000+"
        answer = message_id.encode("ascii") + b"\x00" + final_date.encode("ascii") + b"\x00"
        answer += bytes([MESSAGE_STATES[fate], 0 if fate == "DELIVRD" else 1])
        self._writer.write(_pdu(QUERY_SM | RESP, ESME_ROK, seq, answer))

    async def _drop(self) -> None:
        """Close as a failing centre would, mid-stream: answers already
        written still reach the ESME (sent, then FIN), nothing more is read."""
        self.server.centre.counters["drops"] += 1
        log.info("connection dropped", extra={"fields": {"session": self.number}})
        self._closed = True
        await close_after_written(self._writer)

    async def deliver_receipt(self, receipt: Receipt) -> bool:
        """Sends the receipt; True once the ESME acknowledged it."""
        return await self._acknowledged(receipt, *self._write_receipt(receipt))

    def _write_receipt(self, receipt: Receipt) -> tuple[int, asyncio.Future[int]]:
        seq = next(self._seq)
        tlvs = []
        if self.server.centre.behaviour.receipt_tlvs:
            tlvs = [
                smpp34.Tlv(
                    TLV_RECEIPTED_MESSAGE_ID, (receipt.written_id or receipt.smsc_message_id).encode() + b"\x00"
                ),
                smpp34.Tlv(TLV_MESSAGE_STATE, bytes([MESSAGE_STATES[receipt.stat]])),
            ]
        pdu = smpp34.DeliverSm(
            receipt.handset,
            receipt.to,
            _receipt_text(receipt, self.server.centre.now()),
            source_addr_ton=1,
            source_addr_npi=1,
            esm_class=0x04,
            tlvs=tlvs,
            sequence_number=seq,
        ).encode()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        self._writer.write(pdu)
        return seq, future

    async def _ack_or_requeue(self, receipt: Receipt, seq: int, future: asyncio.Future[int]) -> None:
        if not await self._acknowledged(receipt, seq, future):
            self.server.queue_receipt(receipt)  # kept, as any unacknowledged receipt

    async def _acknowledged(self, receipt: Receipt, seq: int, future: asyncio.Future[int]) -> bool:
        try:
            await self._writer.drain()
            status = await asyncio.wait_for(future, timeout=5.0)
        except (ConnectionError, TimeoutError):
            return False
        finally:
            self._waiting.pop(seq, None)
        if status == ESME_ROK:
            self.server.centre.counters["receipts"] += 1
            return True
        return False
