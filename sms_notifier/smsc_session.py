"""What the sender needs of a session to the SMS centre, whichever protocol
it speaks: smsc_link.SmscLink (SMPP 3.4) and cmpp_link.CmppLink (CMPP 3.0)
both fit these shapes."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from sms_notifier import smpp_status
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import Receipt
from sms_notifier.ucs2_parts import Part

log = logging.getLogger(__name__)


async def take_window_slot(window: asyncio.Semaphore, deadline: float | None) -> bool:
    """A slot in the link's window of unanswered submits: waits for one, or
    with a `deadline` (time.monotonic()) only until then (False: none came)."""
    if deadline is not None and window.locked():
        try:
            await asyncio.wait_for(window.acquire(), max(0.001, deadline - time.monotonic()))
        except TimeoutError:
            return False
    else:
        await window.acquire()
    return True


class SubmitAnswer(Protocol):
    """The centre's answer to one part: `command_status` (SMPP command_status
    or CMPP Result; None when no answer came, with `error` saying why), the
    centre's id for the part when accepted, and what it means for the message."""

    command_status: int | None
    smsc_message_id: str | None
    error: str | None

    @property
    def verdict(self) -> smpp_status.Verdict: ...

    @property
    def reason(self) -> str: ...

    @property
    def throttled(self) -> bool:
        """The centre asked us to slow down (SMPP ESME_RTHROTTLED/ESME_RMSGQFUL, CMPP Result 8)."""
        ...


class SmscSession(Protocol):
    bound: asyncio.Event
    on_bound: Callable[[], None]
    on_receipt: Callable[[Receipt], Awaitable[None]]
    # Whether `query` can ask the centre about one part (SMPP query_sm; CMPP 3.0 cannot).
    can_query: bool

    def key_of(self, smsc_id: str) -> str:
        """The canonical key of an id the centre's submit answer gave (receipts.submit_key)."""
        ...

    async def query(self, smsc_id: str) -> str | None:
        """The part's state as a receipt names it, or None when the centre
        cannot say; ConnectionError when it cannot be asked now."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, dest: str, part: Part, deadline: float | None = None) -> SubmitAnswer: ...


class _EndableSession(Protocol):
    def end(self) -> None: ...


class ReconnectingLink:
    """What both links do alike around their protocol: keep one session to
    the centre up, reconnecting with exponential back-off and jitter, a
    keep-alive task beside each session, `bound` and the metric following it.

    A subclass sets the fields below in its `__init__` and gives `_open`
    (connect and authenticate: SMPP bind_transceiver, CMPP CONNECT), `_read`
    (every PDU until the session ends) and `_keep_alive` (enquire_link,
    ACTIVE_TEST); the log texts name its peer (`_peer`, `_texts`)."""

    _peer: str  # the log field naming the centre: "smsc", "ismg"
    # (cannot open, opened, ended): the log lines of the connection's life
    _texts: tuple[str, str, str]
    _open_errors: tuple[type[BaseException], ...]
    _keep_alive_name: str
    _closing: bool
    _reconnect_min: float
    _reconnect_max: float
    _rng: random.Random
    _session: Any
    _metrics: Metrics
    bound: asyncio.Event
    on_bound: Callable[[], None]

    @property
    def where(self) -> str:
        raise NotImplementedError

    async def _open(self) -> Any:
        raise NotImplementedError

    async def _read(self, session: Any) -> None:
        raise NotImplementedError

    async def _keep_alive(self, session: Any) -> None:
        raise NotImplementedError

    def _opened_fields(self) -> dict[str, object]:
        """What the "opened" log line says besides the centre's address."""
        return {}

    async def _keep_connected(self) -> None:
        cannot_open, opened, ended = self._texts
        delay = self._reconnect_min
        while not self._closing:
            try:
                session = await self._open()
            except self._open_errors as error:
                log.warning(
                    cannot_open,
                    extra={
                        "fields": {
                            self._peer: self.where,
                            "why": str(error) or type(error).__name__,
                            "retry_in": round(delay, 2),
                        }
                    },
                )
                await asyncio.sleep(delay * (0.5 + self._rng.random()))
                delay = min(self._reconnect_max, delay * 2)
                continue
            delay = self._reconnect_min
            self._session = session
            self._metrics.bound = True
            self.bound.set()
            log.info(opened, extra={"fields": {self._peer: self.where, **self._opened_fields()}})
            self.on_bound()
            keep_alive = asyncio.create_task(self._keep_alive(session), name=self._keep_alive_name)
            try:
                await self._read(session)
            finally:
                keep_alive.cancel()
                await asyncio.gather(keep_alive, return_exceptions=True)
                cast(_EndableSession, session).end()
                self._session_ended()
            if not self._closing:
                log.warning(ended, extra={"fields": {self._peer: self.where}})
                await asyncio.sleep(self._reconnect_min * (0.5 + self._rng.random()))

    def _session_ended(self) -> None:
        self._session = None
        self._metrics.bound = False
        self.bound.clear()
