"""What the sender needs of a session to the SMS centre, whichever protocol
it speaks: smsc_link.SmscLink (SMPP 3.4) and cmpp_link.CmppLink (CMPP 3.0)
both fit these shapes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from sms_notifier import smpp_status
from sms_notifier.receipts import Receipt
from sms_notifier.ucs2_parts import Part


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
