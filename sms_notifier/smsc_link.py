"""The SMPP 3.4 session to the SMS centre: bound as a transceiver, over TLS
when configured (M8), kept up (reconnecting with exponential backoff and
jitter), at most `window` submit_sm in flight, enquire_link on a quiet
link, every delivery receipt handed to a callback, and query_sm for a part
whose receipt never came.

Library choice. Three maintained SMPP libraries on PyPI were compared:

- aiosmpplib 0.7.4 (asyncio, pure Python, ESME only): a complete client in
  its own shape: it pulls messages from its own broker queue, reports
  results through hooks, correlates receipts in its own store and splits
  long texts itself, reporting a multi-part message once, so the result of
  each part (which we must record to resend only what is missing after a
  failure) is hidden; it logs whole messages (phone and text) when a send
  fails; and it has no server side for our SMS-centre simulator.
- smpplib 2.2.4 (blocking sockets, ESME only): would need a thread per
  session beside our asyncio services, and no server side either.
- smpp34 1.5.0 (Rust/tokio core, MIT): a PDU codec, and a client and server.
  Its client's TLS (`tls=True`) takes no CA, client certificate or server
  name, so it cannot trust an SMS centre's private CA or present our
  certificate; it has no query_sm; and it acknowledges every deliver_sm
  itself, before we could refuse one (a bounded receipt queue needs to).

So the session is ours, on asyncio streams (Python's ssl for TLS), as the
CMPP one is (cmpp_link.py), with smpp34's codec for submit_sm (encoded) and
deliver_sm (decoded); the small fixed PDUs (bind, responses, enquire_link,
query_sm) are a header and a few C-strings. Concatenation is ucs2_parts.py,
receipt parsing receipts.py.

Ids. The centre's message id is passed on as its submit_sm_resp gave it
(`smsc_message_id`); `key_of` gives its canonical key and receipts carry
theirs, in the form this centre writes them (`id_form`, receipts.IdForm).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import random
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import smpp34

from sms_notifier import receipts, smpp_status
from sms_notifier.metrics import Metrics
from sms_notifier.receipt_queue import ReceiptQueue
from sms_notifier.receipts import IdForm, Receipt
from sms_notifier.smsc_session import ReconnectingLink, take_window_slot
from sms_notifier.ucs2_parts import DATA_CODING_UCS2, Part

log = logging.getLogger(__name__)

# registered_delivery: an SMSC delivery receipt on final success or failure.
_RECEIPT_ON_FINAL = 0x01

BIND_TRANSCEIVER = 0x00000009
QUERY_SM = 0x00000003
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
ENQUIRE_LINK = 0x00000015
GENERIC_NACK = 0x80000000
RESP = 0x80000000
_INTERFACE_VERSION = 0x34
_MAX_PDU = 64 * 1024


def pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    """One SMPP PDU: the 16-octet header, then `body`."""
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def c_string(value: str) -> bytes:
    return value.encode("latin-1") + b"\x00"


def split_c_string(body: bytes) -> tuple[str, bytes]:
    value, _, rest = body.partition(b"\x00")
    return value.decode("latin-1"), rest


def query_sm_resp_state(body: bytes) -> int | None:
    """message_state of a query_sm_resp body (message_id, final_date,
    message_state, error_code; §4.8.2), None if it is cut short."""
    _, rest = split_c_string(body)
    _, rest = split_c_string(rest)
    return rest[0] if rest else None


@dataclass(frozen=True)
class Addressing:
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    dest_addr_ton: int
    dest_addr_npi: int


@dataclass(frozen=True)
class SubmitResult:
    """`command_status` from the centre, or None when no answer came
    (session lost or not bound): then `error` says which."""

    command_status: int | None
    smsc_message_id: str | None = None
    error: str | None = None

    @property
    def verdict(self) -> smpp_status.Verdict:
        if self.command_status is None:
            return smpp_status.Verdict.TRANSIENT
        return smpp_status.verdict(self.command_status)

    @property
    def reason(self) -> str:
        if self.command_status is None:
            return self.error or "connection_lost"
        return smpp_status.name(self.command_status)

    @property
    def throttled(self) -> bool:
        return self.command_status in (smpp_status.ESME_RTHROTTLED, smpp_status.ESME_RMSGQFUL)


@dataclass(frozen=True)
class TlsOptions:
    """SMPP over TLS: the CA that signs the centre's certificate (None: the
    system's roots), our client certificate and key if the centre asks for
    one, and the name its certificate carries (None: the host)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class _SessionLost(Exception):
    pass


class _Refused(Exception):
    pass


class _Session:
    """One connection after a successful bind."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.waiting: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.last_heard = time.monotonic()
        self.dead = asyncio.Event()
        self.unbound = asyncio.get_running_loop().create_future()

    def end(self) -> None:
        self.dead.set()
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(_SessionLost())
        self.waiting.clear()
        if not self.unbound.done():
            self.unbound.set_result(False)
        self.writer.close()


class SmscLink(ReconnectingLink):
    _peer = "smsc"
    _texts = ("cannot bind to the SMS centre", "bound to the SMS centre", "SMS centre session ended; reconnecting")
    _open_errors = (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError, _Refused)
    _keep_alive_name = "smsc-enquire-link"

    def _opened_fields(self) -> dict[str, object]:
        return {"as": "transceiver", "tls": self._ssl is not None}

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        addressing: Addressing,
        *,
        window: int,
        metrics: Metrics,
        bind_timeout: float = 5.0,
        reconnect_min: float = 0.2,
        reconnect_max: float = 10.0,
        rng: random.Random | None = None,
        tls: TlsOptions | None = None,
        id_form: IdForm = "auto",
        utc_offset: dt.timedelta = dt.timedelta(hours=8),
        response_timeout: float = 30.0,
        enquire_link_seconds: float = 30.0,
        receipt_queue_capacity: int = 10_000,
    ) -> None:
        """`tls`: SMPP over TLS (None: plain TCP); `id_form`: how this centre
        writes ids in receipts (receipts.IdForm); `utc_offset`: its clock,
        which receipt dates are written in."""
        self._host, self._port = host, port
        self._system_id, self._password = system_id, password
        self._addressing = addressing
        self._window = asyncio.Semaphore(window)
        self._metrics = metrics
        self._bind_timeout = bind_timeout
        self._reconnect_min, self._reconnect_max = reconnect_min, reconnect_max
        self._rng = rng or random.Random()
        self._tls = tls
        self._ssl = tls.context() if tls is not None else None
        self._id_form: IdForm = id_form
        self._utc_offset = utc_offset
        self._response_timeout = response_timeout
        self._enquire_link = enquire_link_seconds
        self._sequence = itertools.count(1)
        self._session: _Session | None = None
        self._receipts = ReceiptQueue(lambda receipt: self.on_receipt(receipt), "smsc-receipts", receipt_queue_capacity)
        self._task: asyncio.Task | None = None
        self._closing = False
        self.bound = asyncio.Event()
        # Set by the owner: called on each bind, and with each delivery receipt.
        self.on_bound: Callable[[], None] = lambda: None
        self.on_receipt: Callable[[Receipt], Awaitable[None]] = _ignore

    @property
    def where(self) -> str:
        return f"{self._host}:{self._port}"

    def _next_sequence(self) -> int:
        # sequence_number: 0x00000001 to 0x7FFFFFFF (§5.1.4).
        return next(self._sequence) % 0x7FFFFFFF + 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected(), name="smsc-link")
        self._receipts.start()

    async def close(self) -> None:
        """Unbind and stop; in-flight submits get no answer (their messages
        go to the fallback queue, or their caller tries again). Receipts
        acknowledged before are recorded first."""
        self._closing = True
        session = self._session
        if session is not None and not session.dead.is_set():
            try:
                session.writer.write(pdu(UNBIND, 0, self._next_sequence()))
                await session.writer.drain()
                # Receipts the centre sends before its unbind_resp are still read.
                await asyncio.wait_for(asyncio.shield(session.unbound), timeout=2.0)
            except (ConnectionError, TimeoutError, ssl.SSLError):
                pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if session is not None:
            session.end()
        self._session_ended()
        await self._receipts.stop()

    # -- what the settler needs -------------------------------------------------

    can_query = True

    def key_of(self, smsc_id: str) -> str:
        """The canonical key of an id a submit_sm_resp gave."""
        return receipts.submit_key(smsc_id, self._id_form)

    async def query(self, smsc_id: str) -> str | None:
        """query_sm (§4.8.1): the part's state as a receipt would name it
        (DELIVRD, UNDELIV, ENROUTE, ...), or None when the centre cannot say
        (an error status, e.g. an id it no longer knows). Raises
        ConnectionError when it cannot be asked now (not bound, the session
        lost, no answer): ask again later."""
        session = self._session
        if session is None or session.dead.is_set():
            raise ConnectionError("not bound to the SMS centre")
        a = self._addressing
        body = c_string(smsc_id) + bytes([a.source_addr_ton, a.source_addr_npi]) + c_string(a.source_addr)
        try:
            status, answer = await self._request(session, QUERY_SM, body)
        except (_SessionLost, TimeoutError, ssl.SSLError) as error:
            raise ConnectionError("query_sm unanswered") from error
        state = query_sm_resp_state(answer) if status == smpp_status.ESME_ROK else None
        return receipts.STATE_NAMES.get(state) if state is not None else None

    # -- submitting -------------------------------------------------------------

    async def submit(self, dest: str, part: Part, deadline: float | None = None) -> SubmitResult:
        """Submits one part and returns the centre's answer. Several may be
        awaited at once (pipelined): they go out in the order called, at most
        `window` unanswered. With a `deadline` (time.monotonic()), a part
        still waiting for room in the window then is not sent (error
        "deadline")."""
        if not await take_window_slot(self._window, deadline):
            return SubmitResult(None, error="deadline")
        try:
            return await self._submit(dest, part)
        finally:
            self._window.release()

    async def _submit(self, dest: str, part: Part) -> SubmitResult:
        session = self._session
        if session is None or session.dead.is_set():
            return SubmitResult(None, error="not_bound")
        a = self._addressing
        sequence = self._next_sequence()
        encoded = smpp34.SubmitSm(
            a.source_addr,
            dest,
            part.short_message,
            source_addr_ton=a.source_addr_ton,
            source_addr_npi=a.source_addr_npi,
            dest_addr_ton=a.dest_addr_ton,
            dest_addr_npi=a.dest_addr_npi,
            esm_class=part.esm_class,
            registered_delivery=_RECEIPT_ON_FINAL,
            data_coding=DATA_CODING_UCS2,
            sequence_number=sequence,
        ).encode()
        try:
            status, body = await self._request(session, SUBMIT_SM, encoded=encoded, sequence=sequence)
        except (_SessionLost, ConnectionError, ssl.SSLError):
            return SubmitResult(None, error="connection_lost")
        except TimeoutError:
            # Whether the centre took it is unknown; the part will be sent
            # again, on a new session: this one is not answering.
            log.warning("submit_sm unanswered; reconnecting", extra={"fields": {"smsc": self.where}})
            session.end()
            return SubmitResult(None, error="connection_lost")
        message_id, _ = split_c_string(body)
        if status == smpp_status.ESME_ROK and not message_id:
            return SubmitResult(smpp_status.ESME_RSYSERR, error="no message id")
        if status == smpp_status.ESME_ROK and len(message_id) > receipts.MAX_ID_LENGTH:
            return SubmitResult(smpp_status.ESME_RSYSERR, error="message id too long")
        return SubmitResult(status, message_id or None)

    async def _request(
        self,
        session: _Session,
        command_id: int,
        body: bytes = b"",
        *,
        encoded: bytes | None = None,
        sequence: int | None = None,
    ) -> tuple[int, bytes]:
        """Sends a request PDU and awaits its response: (command_status, body)."""
        if sequence is None:
            sequence = self._next_sequence()
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        session.waiting[sequence] = future
        try:
            session.writer.write(encoded if encoded is not None else pdu(command_id, 0, sequence, body))
            await session.writer.drain()
            return await asyncio.wait_for(future, self._response_timeout)
        finally:
            session.waiting.pop(sequence, None)

    # -- the session ----------------------------------------------------------

    async def _open(self) -> _Session:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=(self._tls.server_name or self._host) if self._tls is not None else None,
            ),
            self._bind_timeout,
        )
        try:
            sequence = self._next_sequence()
            body = (
                c_string(self._system_id)
                + c_string(self._password)
                + c_string("")  # system_type
                + bytes([_INTERFACE_VERSION, 0, 0])  # interface_version, addr_ton, addr_npi
                + c_string("")  # address_range
            )
            writer.write(pdu(BIND_TRANSCEIVER, 0, sequence, body))
            await writer.drain()
            command_id, status, answered, _ = await asyncio.wait_for(_read_pdu(reader), self._bind_timeout)
            if command_id not in (BIND_TRANSCEIVER | RESP, GENERIC_NACK) or answered != sequence:
                raise _Refused(f"answered bind_transceiver with command 0x{command_id:08X}")
            if status != smpp_status.ESME_ROK:
                raise _Refused(f"bind_transceiver_resp {smpp_status.name(status)}")
        except BaseException:
            writer.close()
            raise
        return _Session(reader, writer)

    async def _read(self, session: _Session) -> None:
        """Every PDU from the centre until the session ends."""
        try:
            while not session.dead.is_set():
                command_id, status, sequence, body = await _read_pdu(session.reader)
                session.last_heard = time.monotonic()
                await self._dispatch(session, command_id, status, sequence, body)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, _Refused) as error:
            if not self._closing:
                log.info("SMS centre session read ended", extra={"fields": {"why": type(error).__name__}})

    async def _dispatch(self, session: _Session, command_id: int, status: int, sequence: int, body: bytes) -> None:
        if command_id in (SUBMIT_SM | RESP, QUERY_SM | RESP, ENQUIRE_LINK | RESP, GENERIC_NACK):
            future = session.waiting.get(sequence)
            if future is not None and not future.done():
                future.set_result((status if command_id != GENERIC_NACK else status or 0xFF, body))
        elif command_id == DELIVER_SM:
            # Acknowledged once queued: the centre will not send it again. A
            # full queue answers a temporary error: the centre sends it later.
            taken = self._take(pdu(command_id, status, sequence, body))
            answer = smpp_status.ESME_ROK if taken else smpp_status.ESME_RX_T_APPN
            session.writer.write(pdu(DELIVER_SM | RESP, answer, sequence, b"\x00"))
        elif command_id == ENQUIRE_LINK:
            session.writer.write(pdu(ENQUIRE_LINK | RESP, smpp_status.ESME_ROK, sequence))
        elif command_id == UNBIND:
            session.writer.write(pdu(UNBIND | RESP, smpp_status.ESME_ROK, sequence))
            await session.writer.drain()
            log.info("the SMS centre unbound", extra={"fields": {"smsc": self.where}})
            session.dead.set()
            return
        elif command_id == UNBIND | RESP:
            if not session.unbound.done():
                session.unbound.set_result(True)
            session.dead.set()
            return
        elif command_id & RESP:
            pass  # a response to nothing we wait for
        else:
            session.writer.write(pdu(GENERIC_NACK, smpp_status.ESME_RINVCMDID, sequence))
        await session.writer.drain()

    def _take(self, raw: bytes) -> bool:
        """False: a receipt the receipt queue had no room for."""
        try:
            decoded = smpp34.decode(raw)
        except smpp34.SmppError:
            log.warning("malformed deliver_sm ignored", extra={"fields": {"length": len(raw)}})
            return True
        if not isinstance(decoded, smpp34.DeliverSm):
            return True
        receipt = receipts.parse(
            decoded.esm_class,
            decoded.short_message,
            {t.tag: t.value for t in decoded.tlvs},
            self._id_form,
            self._utc_offset,
        )
        if receipt is None:
            # A mobile-originated SMS to 10699000: nothing here reads those yet.
            log.info("deliver_sm that is not a receipt ignored", extra={"fields": {"esm_class": decoded.esm_class}})
            return True
        return self._receipts.put(receipt)

    async def _keep_alive(self, session: _Session) -> None:
        """enquire_link when nothing was heard for `enquire_link_seconds`; the
        session is given up when it brings no answer in time."""
        while not session.dead.is_set():
            quiet = time.monotonic() - session.last_heard
            if quiet < self._enquire_link:
                await asyncio.sleep(self._enquire_link - quiet)
                continue
            try:
                await self._request(session, ENQUIRE_LINK)
            except (_SessionLost, ConnectionError, ssl.SSLError):
                return
            except TimeoutError:
                log.warning("SMS centre silent to enquire_link; reconnecting", extra={"fields": {"smsc": self.where}})
                session.end()
                return


async def _read_pdu(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    length, command_id, status, sequence = struct.unpack(">IIII", await reader.readexactly(16))
    if not 16 <= length <= _MAX_PDU:
        raise _Refused(f"PDU of {length} octets")
    return command_id, status, sequence, await reader.readexactly(length - 16)


async def _ignore(receipt: Receipt) -> None:
    pass
