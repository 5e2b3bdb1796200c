"""The CMPP 3.0 session to a China Mobile ISMG (QB-GF-028-2003 V3.0.0): the
same interface as smsc_link.SmscLink, so the sender uses either. Connected as
an SP (CMPP_CONNECT with the MD5 authenticator, §8.4.1), kept up (reconnecting
with exponential backoff and jitter), at most `window` CMPP_SUBMIT unanswered
(§7.1 sliding window, W), CMPP_ACTIVE_TEST on a quiet link (§7.1: every C,
given up after N unanswered tries of T each), every status report
(CMPP_DELIVER with Registered_Delivery 1, §8.4.5) handed to a callback as a
`receipts.Receipt`, and CMPP_TERMINATE at stop (§8.4.2).

Flow control: an ISMG answers CMPP_SUBMIT_RESP Result 8 ("流量控制错") when
the SP goes faster than its contract. The link then pauses every submit for
a back-off (doubling from `flow_control_pause` up to `flow_control_pause_max`,
with jitter) and sends the part again, until its deadline; a part still
refused then is answered with Result 8 (transient) and `throttled` set.

Written by hand on asyncio streams over yztc.cmpp (the codec), because no
maintained Python CMPP client exists (tech-facts §4c; yztc/cmpp.py says which
were looked at).

The centre's Msg_Id (8 octets) is given to the sender as its unsigned decimal
string; the status report's Msg_Id is written the same way, so the two match.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sms_notifier import receipts, smpp_status
from sms_notifier.metrics import Metrics
from sms_notifier.receipt_queue import ReceiptQueue
from sms_notifier.receipts import Receipt
from sms_notifier.smsc_session import ReconnectingLink, take_window_slot
from sms_notifier.ucs2_parts import ESM_CLASS_UDHI, Part
from yztc import cmpp

log = logging.getLogger(__name__)

# Results worth sending again later: flow control, a Sequence_Id the ISMG
# took for a duplicate (the next try has a new one), and the results past
# the spec's list (§8.4.3.2 ends it with "……"), which gateways use for their
# own faults. The other listed results (1-13) are about the message (length,
# codes, numbers) and fail again however often it is sent.
_TRANSIENT_RESULTS = frozenset({cmpp.RESULT_FLOW_CONTROL, 3})
_LAST_LISTED_RESULT = 13


class CmppSettings(BaseSettings):
    """The notifier's CMPP 3.0 account at the ISMG (env YZTC_NOTIFIER_CMPP_*),
    read only when YZTC_NOTIFIER_SMSC_PROTOCOL is `cmpp30`."""

    model_config = SettingsConfigDict(env_prefix="YZTC_NOTIFIER_CMPP_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(7890, ge=1, le=65535)  # §7.3: SP-ISMG long connections
    source_addr: str = Field(..., min_length=1, max_length=6)  # SP_Id, the SP's enterprise code
    shared_secret: SecretStr
    service_id: str = Field("", max_length=10)  # Service_Id, agreed with the operator
    src_id: str = Field("10699000", min_length=1, max_length=21)  # the number handsets show
    window: int = Field(16, ge=1, le=1000)  # §7.1 W; the spec suggests 16
    connect_timeout_seconds: float = Field(5.0, gt=0)
    response_timeout_seconds: float = Field(30.0, gt=0)  # §7.1 T is 60 s; a submit waits this long
    active_test_seconds: float = Field(30.0, gt=0)  # §7.1 C is 3 min; NATs drop quiet links sooner
    active_test_tries: int = Field(3, ge=1)  # §7.1 N
    flow_control_pause_seconds: float = Field(0.5, gt=0)
    flow_control_pause_max_seconds: float = Field(10.0, gt=0)
    # The ISMG's clock, which status reports' Submit_time/Done_time are
    # written in: China Standard Time by default.
    utc_offset_minutes: int = Field(480, ge=-720, le=840)


@dataclass(frozen=True)
class CmppSubmitResult:
    """What the ISMG answered to one CMPP_SUBMIT: `command_status` is its
    Result (§8.4.3.2), or None when no answer came (then `error` says why).
    Shaped like smsc_link.SubmitResult, so the sender reads either."""

    command_status: int | None
    smsc_message_id: str | None = None
    error: str | None = None

    @property
    def verdict(self) -> smpp_status.Verdict:
        status = self.command_status
        if status is None or status in _TRANSIENT_RESULTS or status > _LAST_LISTED_RESULT:
            return smpp_status.Verdict.TRANSIENT
        if self.command_status == cmpp.RESULT_OK:
            return smpp_status.Verdict.ACCEPTED
        return smpp_status.Verdict.PERMANENT

    @property
    def reason(self) -> str:
        if self.command_status is None:
            return self.error or "connection_lost"
        return cmpp.result_name(self.command_status)

    @property
    def throttled(self) -> bool:
        return self.command_status == cmpp.RESULT_FLOW_CONTROL


def msg_id_text(msg_id: int) -> str:
    """The form the sender and the settler see a Msg_Id in: unsigned decimal."""
    return str(msg_id)


class _SessionLost(Exception):
    pass


class _Session:
    """One TCP connection after a successful CMPP_CONNECT."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.waiting: dict[int, asyncio.Future[cmpp.SubmitResp]] = {}
        self.terminated = asyncio.get_running_loop().create_future()
        self.last_heard = time.monotonic()
        self.dead = asyncio.Event()

    def end(self) -> None:
        self.dead.set()
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(_SessionLost())
        self.waiting.clear()
        if not self.terminated.done():
            self.terminated.set_result(False)
        self.writer.close()


class _Refused(Exception):
    pass


class CmppLink(ReconnectingLink):
    _peer = "ismg"
    _texts = ("cannot connect to the ISMG", "connected to the ISMG", "ISMG connection ended; reconnecting")
    _open_errors = (OSError, TimeoutError, asyncio.IncompleteReadError, cmpp.CmppError, _Refused)
    _keep_alive_name = "cmpp-active-test"

    def _opened_fields(self) -> dict[str, object]:
        return {"protocol": "CMPP 3.0"}

    def __init__(
        self,
        settings: CmppSettings,
        *,
        metrics: Metrics,
        reconnect_min: float = 0.2,
        reconnect_max: float = 10.0,
        verify_ismg: bool = True,
        rng: random.Random | None = None,
        now: Callable[[], dt.datetime] = dt.datetime.now,
        receipt_queue_capacity: int = 10_000,
    ) -> None:
        """`now` gives the local time the CONNECT Timestamp is written in
        (the ISMG checks the authenticator, not the clock). `verify_ismg`:
        refuse an ISMG whose AuthenticatorISMG does not prove it knows the
        shared secret."""
        self._s = settings
        self._secret = settings.shared_secret.get_secret_value()
        self._window = asyncio.Semaphore(settings.window)
        self._metrics = metrics
        self._reconnect_min, self._reconnect_max = reconnect_min, reconnect_max
        self._verify_ismg = verify_ismg
        self._rng = rng or random.Random()
        self._now = now
        self._sequence = itertools.count(1)
        self._session: _Session | None = None
        self._receipts = ReceiptQueue(lambda receipt: self.on_receipt(receipt), "cmpp-receipts", receipt_queue_capacity)
        self._task: asyncio.Task | None = None
        self._closing = False
        self._paused_until = 0.0
        self._pause = settings.flow_control_pause_seconds
        self.bound = asyncio.Event()
        # Set by the owner: called on each connect, and with each status report.
        self.on_bound: Callable[[], None] = lambda: None
        self.on_receipt: Callable[[Receipt], Awaitable[None]] = _ignore

    @property
    def where(self) -> str:
        return f"{self._s.host}:{self._s.port}"

    def _next_sequence(self) -> int:
        # Sequence_Id: "顺序累加,步长为 1,循环使用" (§8.3), kept to 1..2^32-1.
        return next(self._sequence) % 0xFFFFFFFF + 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected(), name="cmpp-link")
        self._receipts.start()

    async def close(self) -> None:
        """CMPP_TERMINATE, then stop; in-flight submits get no answer (their
        messages go to the fallback queue, or their caller tries again). The
        reports acknowledged before are recorded first."""
        self._closing = True
        session = self._session
        if session is not None and not session.dead.is_set():
            try:
                session.writer.write(cmpp.terminate(self._next_sequence()))
                await session.writer.drain()
                # Reports the ISMG sends before its TERMINATE_RESP are still read.
                await asyncio.wait_for(asyncio.shield(session.terminated), timeout=2.0)
            except (ConnectionError, TimeoutError):
                pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if session is not None:
            session.end()
        self._session_ended()
        await self._receipts.stop()

    # -- submitting -------------------------------------------------------------

    async def submit(self, dest: str, part: Part, deadline: float | None = None) -> CmppSubmitResult:
        """Submits one part (a CMPP_SUBMIT to `dest`) and returns the ISMG's
        answer. Several may be awaited at once: at most `window` unanswered.
        With a `deadline` (time.monotonic()), a part still waiting for room
        in the window, or for a flow-control pause to end, is not sent then."""
        tries = 0
        refused: CmppSubmitResult | None = None  # the last Result 8
        while True:
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                if deadline is not None and time.monotonic() + wait > deadline:
                    # Out of time: the ISMG's last word, or nothing sent at all.
                    return refused or CmppSubmitResult(None, error="deadline")
                await asyncio.sleep(wait)
            result = await self._submit_in_window(dest, part, deadline)
            tries += 1
            if not result.throttled:
                if result.verdict is smpp_status.Verdict.ACCEPTED:
                    self._pause = self._s.flow_control_pause_seconds
                return result
            # Flow control: everyone waits, then this part goes again.
            refused = result
            pause = self._pause * (0.5 + self._rng.random())
            self._paused_until = max(self._paused_until, time.monotonic() + pause)
            self._pause = min(self._s.flow_control_pause_max_seconds, self._pause * 2)
            log.info("ISMG flow control; pausing submits", extra={"fields": {"pause_s": round(pause, 2)}})
            if deadline is None and tries >= 3:
                return result

    async def _submit_in_window(self, dest: str, part: Part, deadline: float | None) -> CmppSubmitResult:
        if not await take_window_slot(self._window, deadline):
            return CmppSubmitResult(None, error="deadline")
        try:
            return await self._submit(dest, part)
        finally:
            self._window.release()

    async def _submit(self, dest: str, part: Part) -> CmppSubmitResult:
        session = self._session
        if session is None or session.dead.is_set():
            return CmppSubmitResult(None, error="not_bound")
        s = self._s
        submit = cmpp.Submit(
            dest_terminal_ids=(dest,),
            msg_content=part.short_message,
            src_id=s.src_id,
            msg_src=s.source_addr,
            service_id=s.service_id,
            pk_total=part.total,
            pk_number=part.seq,
            registered_delivery=1,
            tp_udhi=1 if part.esm_class & ESM_CLASS_UDHI else 0,
            msg_fmt=cmpp.MSG_FMT_UCS2,
        )
        sequence_id = self._next_sequence()
        future: asyncio.Future[cmpp.SubmitResp] = asyncio.get_running_loop().create_future()
        session.waiting[sequence_id] = future
        try:
            session.writer.write(submit.encode(sequence_id))
            await session.writer.drain()
            resp = await asyncio.wait_for(future, s.response_timeout_seconds)
        except (ConnectionError, _SessionLost):
            return CmppSubmitResult(None, error="connection_lost")
        except TimeoutError:
            # Whether the ISMG took it is unknown; the part will be sent again,
            # on a new connection: this one is not answering.
            log.warning("CMPP_SUBMIT unanswered; reconnecting", extra={"fields": {"ismg": self.where}})
            session.end()
            return CmppSubmitResult(None, error="connection_lost")
        finally:
            session.waiting.pop(sequence_id, None)
        if resp.result == cmpp.RESULT_OK:
            return CmppSubmitResult(resp.result, msg_id_text(resp.msg_id))
        return CmppSubmitResult(resp.result)

    # -- the connection ---------------------------------------------------------

    async def _open(self) -> _Session:
        s = self._s
        reader, writer = await asyncio.wait_for(asyncio.open_connection(s.host, s.port), s.connect_timeout_seconds)
        try:
            connect = cmpp.Connect.signed(s.source_addr, self._secret, cmpp.timestamp(self._now()))
            sequence_id = self._next_sequence()
            writer.write(connect.encode(sequence_id))
            await writer.drain()
            head, body = await asyncio.wait_for(_read_message(reader), s.connect_timeout_seconds)
            if head.command_id != cmpp.CONNECT_RESP or head.sequence_id != sequence_id:
                raise _Refused(f"answered CONNECT with command 0x{head.command_id:08X}")
            resp = cmpp.ConnectResp.decode(body)
            if resp.status != cmpp.CONNECT_OK:
                raise _Refused(f"CONNECT_RESP Status {resp.status}")
            expected = cmpp.authenticator_ismg(resp.status, connect.authenticator_source, self._secret)
            if self._verify_ismg and resp.authenticator_ismg != expected:
                raise _Refused("AuthenticatorISMG does not match the shared secret")
        except BaseException:
            writer.close()
            raise
        return _Session(reader, writer)

    async def _read(self, session: _Session) -> None:
        """Every message from the ISMG until the connection ends."""
        try:
            while not session.dead.is_set():
                head, body = await _read_message(session.reader)
                session.last_heard = time.monotonic()
                await self._dispatch(session, head, body)
        except (asyncio.IncompleteReadError, ConnectionError, cmpp.CmppError) as error:
            if not self._closing:
                log.info("ISMG connection read ended", extra={"fields": {"why": type(error).__name__}})

    async def _dispatch(self, session: _Session, head: cmpp.Header, body: bytes) -> None:
        command, sequence_id = head.command_id, head.sequence_id
        if command == cmpp.SUBMIT_RESP:
            future = session.waiting.get(sequence_id)
            if future is not None and not future.done():
                future.set_result(cmpp.SubmitResp.decode(body))
        elif command == cmpp.DELIVER:
            try:
                deliver = cmpp.Deliver.decode(body)
            except cmpp.CmppError:
                # Answered "1: message structure error" (§8.4.5.2), not dropped
                # silently: the ISMG knows it was not taken.
                log.warning("malformed CMPP_DELIVER refused", extra={"fields": {"length": len(body)}})
                msg_id = int.from_bytes(body[:8], "big") if len(body) >= 8 else 0
                session.writer.write(cmpp.DeliverResp(msg_id, 1).encode(sequence_id))
            else:
                # Answered once queued: the ISMG will not send it again. A full
                # queue answers Result 8 (flow control): the ISMG sends it later.
                taken = self._take(deliver)
                result = cmpp.RESULT_OK if taken else cmpp.RESULT_FLOW_CONTROL
                session.writer.write(cmpp.DeliverResp(deliver.msg_id, result).encode(sequence_id))
        elif command == cmpp.ACTIVE_TEST:
            session.writer.write(cmpp.active_test_resp(sequence_id))
        elif command == cmpp.TERMINATE:
            session.writer.write(cmpp.terminate_resp(sequence_id))
            await session.writer.drain()
            log.info("the ISMG ended the connection (CMPP_TERMINATE)", extra={"fields": {"ismg": self.where}})
            session.dead.set()
            return
        elif command == cmpp.TERMINATE_RESP:
            if not session.terminated.done():
                session.terminated.set_result(True)
            session.dead.set()
            return
        elif command == cmpp.ACTIVE_TEST_RESP:
            pass  # last_heard is enough
        else:
            log.info("CMPP message ignored", extra={"fields": {"command_id": f"0x{command:08X}"}})
        await session.writer.drain()

    def _take(self, deliver: cmpp.Deliver) -> bool:
        """False: a status report the receipt queue had no room for."""
        try:
            report = deliver.status_report()
        except cmpp.CmppError:
            log.warning(
                "status report of unknown layout ignored", extra={"fields": {"length": len(deliver.msg_content)}}
            )
            return True
        if report is None:
            # A mobile-originated SMS to 10699000: nothing here reads those yet.
            log.info("CMPP_DELIVER that is not a status report ignored")
            return True
        return self._receipts.put(self.receipt_of(report))

    def receipt_of(self, report: cmpp.Report) -> Receipt:
        """The report as a Receipt: Msg_Id is binary on both sides, so its one
        key is the decimal text the submit answer gave (msg_id_text); Stat
        one of receipts.STAT_LABELS; the times in the ISMG's local time."""
        text = msg_id_text(report.msg_id)
        offset = dt.timedelta(minutes=self._s.utc_offset_minutes)
        return Receipt(
            text,
            receipts.stat_label(report.stat),
            (text,),
            receipts.receipt_time(report.submit_time, offset),
            receipts.receipt_time(report.done_time, offset),
            report.stat,
        )

    # What the settler needs of the link: one form of id, and no per-message
    # query (CMPP 3.0's CMPP_QUERY gives daily totals only, §8.4.7).
    can_query = False

    @staticmethod
    def key_of(smsc_id: str) -> str:
        return smsc_id

    async def query(self, smsc_id: str) -> str | None:
        return None

    async def _keep_alive(self, session: _Session) -> None:
        """CMPP_ACTIVE_TEST when nothing was heard for C; the connection is
        given up when N tries of T each bring nothing (§7.1)."""
        s = self._s
        answer_within = min(s.response_timeout_seconds, s.active_test_seconds)
        while not session.dead.is_set():
            quiet = time.monotonic() - session.last_heard
            if quiet < s.active_test_seconds:
                await asyncio.sleep(s.active_test_seconds - quiet)
                continue
            for _ in range(s.active_test_tries):
                asked_at = time.monotonic()
                try:
                    session.writer.write(cmpp.active_test(self._next_sequence()))
                    await session.writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(answer_within)
                if session.last_heard >= asked_at:
                    break
            else:
                log.warning("ISMG silent to CMPP_ACTIVE_TEST; reconnecting", extra={"fields": {"ismg": self.where}})
                session.end()
                return


async def _read_message(reader: asyncio.StreamReader) -> tuple[cmpp.Header, bytes]:
    head = cmpp.header(await reader.readexactly(cmpp.HEADER_LENGTH))
    return head, await reader.readexactly(head.total_length - cmpp.HEADER_LENGTH)


async def _ignore(receipt: Receipt) -> None:
    pass
