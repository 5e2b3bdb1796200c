"""What the SMS-centre simulator's protocol faces (smpp_server.py: SMPP 3.4,
cmpp_server.py: CMPP 3.0) share: the listening socket and its sessions, and
the receipts queue. A receipt goes to the session that submitted its
message, else to any session that can take it; while none can, it is kept
and tried again on the next bind or connect, or after a short wait."""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
from collections import deque
from typing import Generic, Protocol, TypeVar

from simulators.sms_centre import Receipt, SmsCentre

_RECEIPT_RETRY_SECONDS = 0.5


async def close_after_written(writer: asyncio.StreamWriter) -> None:
    """Ends a session as a failing centre does, mid-stream: what was already
    written still reaches the peer (sent, then FIN); nothing more is read."""
    await writer.drain()
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def close_session(waiting: dict[int, asyncio.Future[int]], writer: asyncio.StreamWriter) -> None:
    """Ends a session: every receipt still waiting for its answer is answered
    -1 (not acknowledged; the receipts queue keeps it), then the socket closes."""
    for future in waiting.values():
        if not future.done():
            future.set_result(-1)
    writer.close()


class CentreSession(Protocol):
    number: int

    @property
    def can_receive(self) -> bool: ...

    def close(self) -> None: ...

    async def serve(self) -> None: ...


S = TypeVar("S", bound=CentreSession)


class CentreServer(Generic[S]):
    """Subclasses make their sessions (`_new_session`) and hand a receipt to
    one (`_deliver`: True once the peer acknowledged it)."""

    def __init__(self, centre: SmsCentre, receipts_task_name: str) -> None:
        self.centre = centre
        self._receipts_task_name = receipts_task_name
        self._server: asyncio.Server | None = None
        self._sessions: dict[int, S] = {}
        self._numbers = itertools.count(1)
        self._receipts: deque[Receipt] = deque()
        self._receipts_waiting = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._pusher: asyncio.Task | None = None

    def _new_session(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> S:
        raise NotImplementedError

    async def _deliver(self, session: S, receipt: Receipt) -> bool:
        raise NotImplementedError

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Listens (over TLS with `tls`); returns where."""
        self._server = await asyncio.start_server(self._accept, host, port, ssl=tls)
        self._pusher = asyncio.create_task(self._push_receipts(), name=self._receipts_task_name)
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions.values()):
            session.close()
        tasks = [*self._tasks, *([self._pusher] if self._pusher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = self._new_session(next(self._numbers), reader, writer)
        self._sessions[session.number] = session
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.serve()
        except asyncio.CancelledError:
            # Only stop() cancels a session, and this is the session task's
            # top, so it ends quietly instead: Python 3.11's start_server asks
            # a cancelled handler task for its exception(), which raises
            # CancelledError in a callback, logged as a traceback (3.12 checks
            # cancelled() first).
            pass
        finally:
            self._sessions.pop(session.number, None)
            if task is not None:
                self._tasks.discard(task)

    def track(self, task: asyncio.Task) -> None:
        """Keeps a side task until it ends (or stop() cancels it)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receipts ---------------------------------------------------------------

    def wake_receipts(self) -> None:
        """A session can now take receipts (it bound or connected): kept ones go."""
        self._receipts_waiting.set()

    def queue_receipt(self, receipt: Receipt) -> None:
        delay = self.centre.behaviour.receipt_delay_ms / 1000
        if delay:
            asyncio.get_running_loop().call_later(delay, self._enqueue, receipt)
        else:
            self._enqueue(receipt)

    def _enqueue(self, receipt: Receipt) -> None:
        self._receipts.append(receipt)
        self._receipts_waiting.set()

    def _receiver_for(self, receipt: Receipt) -> S | None:
        origin = self._sessions.get(receipt.session)
        if origin is not None and origin.can_receive:
            return origin
        return next((s for s in self._sessions.values() if s.can_receive), None)

    async def _push_receipts(self) -> None:
        while True:
            await self._receipts_waiting.wait()
            self._receipts_waiting.clear()
            kept: deque[Receipt] = deque()
            while self._receipts:
                receipt = self._receipts.popleft()
                session = self._receiver_for(receipt)
                if session is None or not await self._deliver(session, receipt):
                    kept.append(receipt)
            self._receipts.extend(kept)
            if self._receipts:
                # Kept for later: the next bind wakes us, else try again soon.
                try:
                    await asyncio.wait_for(self._receipts_waiting.wait(), _RECEIPT_RETRY_SECONDS)
                except TimeoutError:
                    self._receipts_waiting.set()
