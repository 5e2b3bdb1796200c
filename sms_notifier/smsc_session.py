"""What the sender needs of a session to the SMS centre, whichever protocol
it speaks: smsc_link.SmscLink (SMPP 3.4) and cmpp_link.CmppLink (CMPP 3.0)
both fit these shapes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from sms_notifier import smpp_status
from sms_notifier.receipts import Receipt
from sms_notifier.ucs2_parts import Part


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

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, dest: str, part: Part, deadline: float | None = None) -> SubmitAnswer: ...
