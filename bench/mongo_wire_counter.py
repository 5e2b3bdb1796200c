"""A counting TCP proxy in front of FerretDB: every MongoDB wire-protocol
request that passes is one database round trip, counted by command name and
by the client's application name (from the connection's handshake, where
PyMongo sends `appname`: yztc-aggregator, yztc-sms-notifier, gateway).

Why a proxy: the services are separate processes and the driver's command
monitoring lives inside each; our embedded FerretDB exposes no metrics. On
the wire we see exactly what each process asks of the database, without
touching the services. It runs on its own thread and event loop, so the
orchestrator's blocking calls (starting the stack) never stall it, and it
only ever fronts a stack whose figures are not timed (its CPU would show).

Each request is counted as "<command> <collection>" (find work_items,
insert code_uses, ...). Driver plumbing is counted apart: the handshake and heartbeats (`hello`,
`isMaster`), `ping` (the services' health probes), authentication and
`endSessions`.

While `recording()` is on, every request is also kept with its arrival time
in Unix seconds (time.time(), not a monotonic clock: the simulators stamp
company answers and submit_sm with the wall clock of the same machine, and
the sequential-round-trip figure compares the three).
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import bson

OP_QUERY, OP_MSG, OP_COMPRESSED = 2004, 2013, 2012
HANDSHAKE = {"hello", "isMaster", "ismaster"}
PLUMBING = HANDSHAKE | {"ping", "buildInfo", "buildinfo", "saslStart", "saslContinue", "endSessions", "getParameter"}


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\x00", at)
    return data[at:end].decode("utf-8", "replace"), end + 1


def _first_key(doc: bytes) -> str:
    """A BSON document's first key (the command name), without decoding the rest."""
    if len(doc) < 6:
        return "?"
    return _cstring(doc, 5)[0]


def command_label(doc: bytes) -> str:
    """ "<command> <collection>" (e.g. "find work_items"): a command's first
    element is its name, its value the collection when it has one."""
    name, at = _cstring(doc, 5) if len(doc) >= 6 else ("?", 0)
    if name in PLUMBING or doc[4] != 0x02:  # 0x02: a string value
        return name
    size = struct.unpack_from("<i", doc, at)[0]
    return f"{name} {doc[at + 4 : at + 3 + size].decode('utf-8', 'replace')}"


def command_document(opcode: int, body: bytes) -> bytes | None:
    """The command document of a request: OP_MSG's kind-0 section, or OP_QUERY's query."""
    if opcode == OP_MSG:
        flags = struct.unpack_from("<I", body, 0)[0]
        end = len(body) - (4 if flags & 1 else 0)  # checksumPresent
        at = 4
        while at < end:
            kind = body[at]
            at += 1
            size = struct.unpack_from("<i", body, at)[0]
            if kind == 0:
                return body[at : at + size]
            at += size  # kind 1: a document sequence, its size first
        return None
    if opcode == OP_QUERY:
        _name, at = _cstring(body, 4)
        at += 8  # numberToSkip, numberToReturn
        size = struct.unpack_from("<i", body, at)[0]
        return body[at : at + size]
    return None


def application_name(doc: bytes) -> str | None:
    try:
        return bson.decode(doc).get("client", {}).get("application", {}).get("name")
    except Exception:  # a handshake we cannot read: counted under "unknown"
        return None


class WireCounter:
    """Listens on a free port, forwards to `upstream_port`, counts requests."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._counts: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()
        self._log: list[tuple[float, str, str]] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mongo-wire-counter", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    def start(self) -> int:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            # Let the connections' `finally` close their sockets before the loop goes.
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0)

        if self._server is not None:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{application: {command: requests so far}}."""
        with self._lock:
            return {app: dict(counts) for app, counts in self._counts.items()}

    @contextmanager
    def recording(self) -> Iterator[list[tuple[float, str, str]]]:
        """Keeps (Unix time, application, command) of every request while on;
        the list yielded fills as requests pass."""
        log: list[tuple[float, str, str]] = []
        with self._lock:
            self._log = log
        try:
            yield log
        finally:
            with self._lock:
                self._log = None

    def _count(self, app: str, command: str) -> None:
        at = time.time()
        with self._lock:
            self._counts.setdefault(app, Counter())[command] += 1
            if self._log is not None:
                self._log.append((at, app, command))

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            client_w.close()
            return
        up = asyncio.create_task(self._requests(client_r, server_w))
        down = asyncio.create_task(self._answers(server_r, client_w))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._forward_requests(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up

    async def _forward_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        app = "unknown"
        while True:
            header = await reader.readexactly(16)
            length, _request_id, _response_to, opcode = struct.unpack("<iiii", header)
            body = await reader.readexactly(length - 16)
            doc = command_document(opcode, body)
            command = (
                command_label(doc) if doc is not None else ("compressed" if opcode == OP_COMPRESSED else f"op{opcode}")
            )
            if command in HANDSHAKE and app == "unknown" and doc is not None:
                app = application_name(doc) or "unknown"
            self._count(app, command)
            writer.write(header + body)
            await writer.drain()

    @staticmethod
    async def _answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass  # the client hung up


def is_work(command: str) -> bool:
    """A request the service asked for, not driver plumbing."""
    return command.split(" ")[0] not in PLUMBING


def all_requests(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> int:
    """Every request between two snapshots, of every application, plumbing included."""
    return sum(n - before.get(app, {}).get(cmd, 0) for app, counts in after.items() for cmd, n in counts.items())


def work_commands(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], apps: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    """Per application, the requests between two snapshots, driver plumbing left out."""
    found: dict[str, dict[str, int]] = {}
    for app in apps:
        was, now = before.get(app, {}), after.get(app, {})
        delta = {cmd: n - was.get(cmd, 0) for cmd, n in now.items() if is_work(cmd) and n - was.get(cmd, 0)}
        found[app] = dict(sorted(delta.items()))
    return found
