"""The SMPP 3.4 session to the SMS centre: bound as a transceiver, kept up
(reconnecting with exponential backoff and jitter), at most `window`
submit_sm in flight, and every delivery receipt handed to a callback.

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
- smpp34 1.5.0 (asyncio API over a Rust/tokio core, MIT): client and server
  and a PDU codec; `await smsc.submit_sm(...)` returns that one PDU's
  submit_sm_resp (or raises when the session fails), inbound deliver_sm
  come from `await smsc.next()`, and the core runs enquire_link (every
  30 s), the response timer and the PDU framing.

We use smpp34: its await-per-PDU API lets Send pipeline a message's parts
(each awaited on its own, so we know which parts the centre took and resend
only the others), and its codec also serves the simulator. What it leaves to us, done here: the window (its Python
binding does not enforce `window_size`, so a semaphore does), reconnecting
(a `Client` binds once; we make a new one per session), and concatenation
(ucs2_parts.py) and receipt parsing (receipts.py), both small and
specified. Its timers are the core's defaults (enquire_link 30 s, response
30 s); the Python binding does not expose them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import smpp34

from sms_notifier import receipts, smpp_status
from sms_notifier.metrics import Metrics
from sms_notifier.receipt_queue import ReceiptQueue
from sms_notifier.receipts import Receipt
from sms_notifier.smsc_session import take_window_slot
from sms_notifier.ucs2_parts import DATA_CODING_UCS2, Part

log = logging.getLogger(__name__)

# registered_delivery: an SMSC delivery receipt on final success or failure.
_RECEIPT_ON_FINAL = 0x01
# smpp34's tokio tasks finish tearing a session down shortly after unbind
# returns; letting them before the interpreter exits avoids a crash at exit
# seen with 1.5.0 when Python finalises while they still run.
_TEARDOWN_SETTLE_SECONDS = 0.3


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


class SmscLink:
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
    ) -> None:
        self._host, self._port = host, port
        self._system_id, self._password = system_id, password
        self._addressing = addressing
        self._window_size = window
        self._window = asyncio.Semaphore(window)
        self._metrics = metrics
        self._bind_timeout = bind_timeout
        self._reconnect_min, self._reconnect_max = reconnect_min, reconnect_max
        self._rng = rng or random.Random()
        self._smsc: smpp34.Smsc | None = None
        self._broken = asyncio.Event()  # set when the current session is found dead
        self._receipts = ReceiptQueue(lambda receipt: self.on_receipt(receipt), "smsc-receipts")
        self._client: smpp34.Client | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._unanswered_next: asyncio.Future | None = None
        self.bound = asyncio.Event()
        # Set by the owner: called on each bind, and with each delivery receipt.
        self.on_bound: Callable[[], None] = lambda: None
        self.on_receipt: Callable[[Receipt], Awaitable[None]] = _ignore

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_bound(), name="smsc-link")
        self._receipts.start()

    async def close(self) -> None:
        """Unbind and stop; in-flight submits get no answer (their messages
        go to the fallback queue, or their caller tries again)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        smsc, client = self._smsc, self._client
        self._session_ended()
        if smsc is not None:
            try:
                await asyncio.wait_for(smsc.unbind(), timeout=2.0)
            except (smpp34.SmppError, TimeoutError):
                pass
            await self._drain(smsc, self._unanswered_next)
        # Receipts already acknowledged to the centre are recorded before we go.
        await self._receipts.stop()
        if client is not None:
            await client.stop()
            await asyncio.sleep(_TEARDOWN_SETTLE_SECONDS)

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
        smsc, broken = self._smsc, self._broken
        if smsc is None:
            return SubmitResult(None, error="not_bound")
        a = self._addressing
        try:
            resp = await smsc.submit_sm(
                dest,
                part.short_message,
                source_addr=a.source_addr,
                source_addr_ton=a.source_addr_ton,
                source_addr_npi=a.source_addr_npi,
                dest_addr_ton=a.dest_addr_ton,
                dest_addr_npi=a.dest_addr_npi,
                esm_class=part.esm_class,
                registered_delivery=_RECEIPT_ON_FINAL,
                data_coding=DATA_CODING_UCS2,
            )
        except smpp34.SmppError as error:
            # Raised, not answered: the session failed (or the response
            # timer ran out) before a submit_sm_resp came. Whether the
            # centre took the PDU is unknown; the part will be sent again.
            log.warning("submit_sm unanswered", extra={"fields": {"why": str(error)}})
            # smpp34 1.5.0 reports a peer's close to `next()` only some
            # seconds later; the failed submit says it now, so the
            # session is given up and a new one bound at once.
            broken.set()
            return SubmitResult(None, error="connection_lost")
        if resp.is_success and not resp.message_id:
            return SubmitResult(smpp_status.ESME_RSYSERR, error="no message id")
        return SubmitResult(resp.command_status, resp.message_id or None)

    # -- the session ----------------------------------------------------------

    async def _keep_bound(self) -> None:
        delay = self._reconnect_min
        while not self._closing:
            client = smpp34.Client(
                host=self._host,
                port=self._port,
                system_id=self._system_id,
                password=self._password,
                bind_type="TRX",
                window_size=self._window_size,
                connect_timeout_ms=int(self._bind_timeout * 1000),
            )
            self._client = client
            try:
                smsc = await client.connect()
            except smpp34.SmppError as error:
                log.warning(
                    "cannot bind to the SMS centre",
                    extra={
                        "fields": {"smsc": f"{self._host}:{self._port}", "why": str(error), "retry_in": round(delay, 2)}
                    },
                )
                await self._stop_client(client)
                await asyncio.sleep(delay * (0.5 + self._rng.random()))
                delay = min(self._reconnect_max, delay * 2)
                continue
            delay = self._reconnect_min
            self._broken = asyncio.Event()
            self._smsc = smsc
            self._metrics.bound = True
            self.bound.set()
            log.info(
                "bound to the SMS centre", extra={"fields": {"smsc": f"{self._host}:{self._port}", "as": "transceiver"}}
            )
            self.on_bound()
            await self._read_events(smsc, self._broken)
            self._session_ended()
            log.warning(
                "SMS centre session ended; reconnecting", extra={"fields": {"smsc": f"{self._host}:{self._port}"}}
            )
            await self._stop_client(client)
            await asyncio.sleep(self._reconnect_min * (0.5 + self._rng.random()))

    def _session_ended(self) -> None:
        self._smsc = None
        self._client = None
        self._metrics.bound = False
        self.bound.clear()

    async def _stop_client(self, client: smpp34.Client) -> None:
        try:
            await client.stop()
        except smpp34.SmppError:
            pass

    async def _read_events(self, smsc: smpp34.Smsc, broken: asyncio.Event) -> None:
        """Inbound deliver_sm until the session ends or is found dead. The
        core has already acknowledged each one, so none may be left behind:
        they are queued for the receipt workers, and on a dead session what
        the core still holds is drained first.

        A pending `next()` is never cancelled while events may still come: a
        cancelled future whose event the core had already handed over would
        lose that event (a receipt the centre saw acknowledged). So the
        pending `next()` is carried into the drain, and only a `next()` that
        stayed unanswered through a quiet spell is given up."""
        dead = asyncio.ensure_future(broken.wait())
        pending: asyncio.Future | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(smsc.next())
                await asyncio.wait({pending, dead}, return_when=asyncio.FIRST_COMPLETED)
                if not pending.done():
                    await self._drain(smsc, pending)
                    return
                event, pending = pending.result(), None
                if isinstance(event, smpp34.Disconnected):
                    return
                self._take(event)
        finally:
            # Stopped from outside (close): the drain there takes it over.
            self._unanswered_next = pending if pending is not None and not pending.done() else None
            dead.cancel()
            await asyncio.gather(dead, return_exceptions=True)

    async def _drain(self, smsc: smpp34.Smsc, pending: asyncio.Future | None = None) -> None:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(smsc.next())
            done, _ = await asyncio.wait({pending}, timeout=0.05)
            if not done:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
                return
            event, pending = pending.result(), None
            if isinstance(event, smpp34.Disconnected):
                return
            self._take(event)

    def _take(self, event: smpp34.DeliverSmEvent) -> None:
        receipt = receipts.parse(event.esm_class, event.short_message, {t.tag: t.value for t in event.tlvs})
        if receipt is None:
            # A mobile-originated SMS to 10699000: nothing here reads those yet.
            log.info("deliver_sm that is not a receipt ignored", extra={"fields": {"esm_class": event.esm_class}})
            return
        self._receipts.put(receipt)


async def _ignore(receipt: Receipt) -> None:
    pass
