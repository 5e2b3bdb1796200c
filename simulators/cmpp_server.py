"""The SMS centre's CMPP 3.0 face (an ISMG, QB-GF-028-2003 V3.0.0 §8.4): SPs
connect with the configured SP_Id (Source_Addr) and shared secret (§8.4.1),
CMPP_SUBMIT is answered as the centre decides (sms_centre.SmsCentre.on_submit,
the same as over SMPP, so the inspection API shows CMPP messages too, with
`source` = Src_Id), CMPP_ACTIVE_TEST and CMPP_TERMINATE are answered, and
status reports go back as CMPP_DELIVER with Registered_Delivery 1 (§8.4.5) on
the submitting connection or, if it has gone, the next one of the same SP.

Scenario knobs over CMPP (the `sms_centre` section): latency_ms, fail_rate
(answered with Result 14, an "other error" past the spec's list, which SPs
retry), down (CONNECT refused, Status 5), max_per_second and throttle
(Result 8, flow control), drop_at (the connection closed, the SUBMIT
unanswered), undeliverable (report Stat UNDELIV), receipt_delay_ms, `receipts` (which
parts get a report), `receipt_before_resp` (the report written ahead of the
SUBMIT_RESP) and `message_id_wrap` (Msg_Id is the centre's counter, so it
repeats after N). The id-form knobs (`receipt_id_format`, `receipt_tlvs`)
have no CMPP counterpart: Msg_Id is 8 binary octets in both SUBMIT_RESP and
the report. Report times are China Standard Time, as an ISMG writes them.

Written on asyncio streams with yztc.cmpp (the codec): there is no Python
CMPP server to use (tech-facts §4c).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re

from simulators.centre_server import CentreServer, close_after_written, close_session
from simulators.sms_centre import (
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    Receipt,
    SmsCentre,
    SubmitSm,
)
from yztc import cmpp

log = logging.getLogger("simulators.cmpp")

# The centre's answer (SMPP command_status, sms_centre.py) as a SUBMIT_RESP Result (§8.4.3.2).
_RESULTS = {
    ESME_ROK: cmpp.RESULT_OK,
    ESME_RTHROTTLED: cmpp.RESULT_FLOW_CONTROL,
    ESME_RINVMSGLEN: cmpp.RESULT_BAD_LENGTH,
    ESME_RINVDSTADR: cmpp.RESULT_BAD_DEST_TERMINAL_ID,
    ESME_RSYSERR: 14,  # the list ends "……": an unlisted, other error
}
_CONNECT_OTHER_ERROR = 5  # "5~ ：其他错误" (§8.4.1.2)
_UDHI = 0x40
_GATEWAY_CODE = 0x1069  # this simulator's ISMG code in the Msg_Ids it makes
_HEX_ID = re.compile(r"[0-9a-fA-F]{1,16}")


def msg_id_for(message_id: str) -> int:
    """The 8-octet Msg_Id standing for the centre's message id: the id itself
    when it is up to 16 hex digits (what SmsCentre makes), else a hash of it,
    so SUBMIT_RESP and the report always agree."""
    if _HEX_ID.fullmatch(message_id):
        return int(message_id, 16)
    return int.from_bytes(hashlib.sha256(message_id.encode("utf-8")).digest()[:8], "big")


class CmppServer(CentreServer["_Session"]):
    def __init__(self, centre: SmsCentre, source_addr: str, shared_secret: str) -> None:
        """`source_addr`: the one SP_Id accepted; `shared_secret` its secret."""
        super().__init__(centre, "cmpp-receipts")
        self._source_addr = source_addr
        self._secret = shared_secret
        self._deliver_ids = itertools.count(1)

    def _new_session(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Session:
        return _Session(self, number, reader, writer)

    async def _deliver(self, session: _Session, receipt: Receipt) -> bool:
        return await session.deliver_report(receipt)

    def connect_status(self, connect: cmpp.Connect) -> int:
        if self.centre.behaviour.down:
            return _CONNECT_OTHER_ERROR
        if connect.source_addr != self._source_addr:
            return cmpp.CONNECT_BAD_SOURCE_ADDR
        if not connect.verify(self._secret):
            return cmpp.CONNECT_AUTH_FAILED
        if connect.version > cmpp.VERSION_30:
            return cmpp.CONNECT_VERSION_TOO_HIGH
        if connect.version != cmpp.VERSION_30:
            return _CONNECT_OTHER_ERROR  # CMPP 2.0's layouts are not spoken here
        return cmpp.CONNECT_OK

    def connected(self, session: _Session) -> None:
        self.centre.counters["cmpp_connects"] += 1
        log.info("SP connected", extra={"fields": {"session": session.number}})
        self.wake_receipts()  # reports kept for this SP can go now

    def next_deliver_id(self) -> int:
        now = self.centre.now()
        return cmpp.make_msg_id(
            cmpp.MsgIdParts(
                now.month, now.day, now.hour, now.minute, now.second, _GATEWAY_CODE, next(self._deliver_ids)
            )
        )


class _Session:
    def __init__(
        self, server: CmppServer, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.number = number
        self._reader = reader
        self._writer = writer
        self._connected = False
        self._sequence = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._closed = False

    @property
    def can_receive(self) -> bool:
        return self._connected and not self._closed

    def close(self) -> None:
        self._closed = True
        close_session(self._waiting, self._writer)

    async def serve(self) -> None:
        centre = self.server.centre
        try:
            while not self._closed:
                try:
                    head = cmpp.header(await self._reader.readexactly(cmpp.HEADER_LENGTH))
                except cmpp.CmppError:
                    centre.counters["bad_pdus"] += 1
                    return
                body = await self._reader.readexactly(head.total_length - cmpp.HEADER_LENGTH)
                command, seq = head.command_id, head.sequence_id
                if command == cmpp.CONNECT:
                    if not self._on_connect(seq, body):
                        await self._writer.drain()
                        return
                elif not self._connected:
                    centre.counters["bad_pdus"] += 1
                    return  # nothing but CONNECT before CONNECT
                elif command == cmpp.SUBMIT:
                    if not await self._on_submit(seq, body):
                        await self._drop()
                        return
                elif command == cmpp.ACTIVE_TEST:
                    centre.counters["active_tests"] += 1
                    self._writer.write(cmpp.active_test_resp(seq))
                elif command == cmpp.TERMINATE:
                    self._writer.write(cmpp.terminate_resp(seq))
                    await self._writer.drain()
                    centre.counters["terminates"] += 1
                    return
                elif command == cmpp.DELIVER_RESP:
                    future = self._waiting.pop(seq, None)
                    if future is not None and not future.done():
                        future.set_result(cmpp.DeliverResp.decode(body).result)
                elif command & cmpp.RESP:
                    pass  # ACTIVE_TEST_RESP and the like
                else:
                    centre.counters["unknown_commands"] += 1
                await self._writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, cmpp.CmppError):
            pass
        finally:
            self.close()

    def _on_connect(self, seq: int, body: bytes) -> bool:
        try:
            connect = cmpp.Connect.decode(body)
            status = cmpp.CONNECT_BAD_STRUCTURE if self._connected else self.server.connect_status(connect)
        except cmpp.CmppError:
            connect, status = None, cmpp.CONNECT_BAD_STRUCTURE
        auth = b""
        if status == cmpp.CONNECT_OK and connect is not None:
            auth = cmpp.authenticator_ismg(status, connect.authenticator_source, self.server._secret)
        self._writer.write(cmpp.ConnectResp(status, auth, cmpp.VERSION_30).encode(seq))
        if status != cmpp.CONNECT_OK:
            self.server.centre.counters["connect_failures"] += 1
            log.warning("CONNECT refused", extra={"fields": {"session": self.number, "status": status}})
            return False
        self._connected = True
        self.server.connected(self)
        return True

    async def _on_submit(self, seq: int, body: bytes) -> bool:
        """False: drop the connection now, leaving this SUBMIT unanswered."""
        server = self.server
        try:
            submit = cmpp.Submit.decode(body)
        except cmpp.CmppError:
            self._writer.write(cmpp.SubmitResp(0, 1).encode(seq))  # 1: message structure error
            return True
        # One SubmitSm per message, addressed to its first terminal: the
        # notifier never sends to more than one.
        pdu = SubmitSm(
            submit.src_id,
            0,
            0,
            submit.dest_terminal_ids[0],
            0,
            1,
            _UDHI if submit.tp_udhi & 0x01 else 0,
            submit.msg_fmt,
            submit.registered_delivery,
            submit.msg_content,
            {},
        )
        answer = server.centre.on_submit(pdu, self.number)
        if answer.drop:
            return False
        behaviour = server.centre.behaviour
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        result = _RESULTS.get(answer.command_status, 14)
        msg_id = msg_id_for(answer.message_id) if result == cmpp.RESULT_OK else 0
        if answer.receipt is not None and behaviour.receipt_before_resp:
            # Written ahead of the SUBMIT_RESP; its DELIVER_RESP is awaited
            # aside, as this loop must go on reading to see it.
            sent = self._write_report(answer.receipt)
            self._writer.write(cmpp.SubmitResp(msg_id, result).encode(seq))
            server.track(asyncio.create_task(self._ack_or_requeue(answer.receipt, *sent)))
            return True
        self._writer.write(cmpp.SubmitResp(msg_id, result).encode(seq))
        if answer.receipt is not None:
            server.queue_receipt(answer.receipt)
        return True

    async def _drop(self) -> None:
        """Close as a failing ISMG would: what was written still goes, then FIN."""
        self.server.centre.counters["drops"] += 1
        log.info("connection dropped", extra={"fields": {"session": self.number}})
        self._closed = True
        await close_after_written(self._writer)

    async def deliver_report(self, receipt: Receipt) -> bool:
        """Sends the status report; True once the SP answered DELIVER_RESP Result 0."""
        return await self._acknowledged(*self._write_report(receipt))

    def _write_report(self, receipt: Receipt) -> tuple[int, asyncio.Future[int]]:
        now = self.server.centre.now()
        report = cmpp.Report(
            msg_id_for(receipt.smsc_message_id),
            receipt.stat,
            receipt.local_time(receipt.submitted_at),
            receipt.local_time(now),
            receipt.handset,
        )
        seq = next(self._sequence)
        deliver = cmpp.Deliver.report(self.server.next_deliver_id(), receipt.to, report)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        self._writer.write(deliver.encode(seq))
        return seq, future

    async def _acknowledged(self, seq: int, future: asyncio.Future[int]) -> bool:
        try:
            await self._writer.drain()
            result = await asyncio.wait_for(future, timeout=5.0)
        except (ConnectionError, TimeoutError):
            return False
        finally:
            self._waiting.pop(seq, None)
        if result == cmpp.RESULT_OK:
            self.server.centre.counters["cmpp_reports"] += 1
            return True
        return False

    async def _ack_or_requeue(self, receipt: Receipt, seq: int, future: asyncio.Future[int]) -> None:
        if not await self._acknowledged(seq, future):
            self.server.queue_receipt(receipt)  # kept, as any unacknowledged report
