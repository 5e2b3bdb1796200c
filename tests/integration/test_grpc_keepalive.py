"""Keep-alive pings every 10 s are accepted by our gRPC servers, with and
without a call in flight (CONTRACT, gRPC API; issue 17, case 5).

SLOW: about 32 s of wall time, once; both connections share them. gRPC
core strikes a ping that comes sooner than its minimum after the previous
one and sends GOAWAY ENHANCE_YOUR_CALM "too_many_pings" on the third strike
(Python's default minimum is 5 minutes), so four pings 10 s apart are what
tells a server that accepts them from one that does not; no faster test
says the same. The client is HTTP/2 written by hand (RFC 9113 §3.4, §4.1,
§6.5, §6.7, §6.8): a gRPC client sends its first keep-alive ping only one
interval after connecting (so 40 s and more), and does not report the
GOAWAY's code and debug data.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from yztc.grpc_options import (
    CLIENT_KEEPALIVE_OPTIONS,
    CLIENT_PING_INTERVAL_MIN_MS,
    SERVER_MIN_RECV_PING_INTERVAL_MS,
    SERVER_OPTIONS,
)
from yztc.grpc_server import GrpcService

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
ACK = END_STREAM = 0x1
END_HEADERS = 0x4
ENHANCE_YOUR_CALM = 0xB
PING_EVERY = CLIENT_PING_INTERVAL_MIN_MS / 1000  # the CONTRACT's client
PINGS = 4  # the default policy's GOAWAY comes with the fourth


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: str, value: str) -> bytes:
    """HPACK literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2)."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


@dataclass
class Connection:
    """An HTTP/2 connection that answers SETTINGS and PING and records what came."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ping_acks: list[bytes] = field(default_factory=list)
    goaway: tuple[int, bytes] | None = None
    stream_frames: list[int] = field(default_factory=list)

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connection = cls(reader, writer)
        writer.write(PREFACE + _frame(SETTINGS, 0, 0))
        await writer.drain()
        return connection

    async def read_frames(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(9)
                length = int.from_bytes(header[:3], "big")
                kind, flags, stream = header[3], header[4], int.from_bytes(header[5:], "big") & 0x7FFFFFFF
                payload = await self.reader.readexactly(length)
                if kind == SETTINGS and not flags & ACK:
                    self.writer.write(_frame(SETTINGS, ACK, 0))
                elif kind == PING and flags & ACK:
                    self.ping_acks.append(payload)
                elif kind == PING:
                    self.writer.write(_frame(PING, ACK, 0, payload))
                elif kind == GOAWAY:
                    self.goaway = (int.from_bytes(payload[4:8], "big"), payload[8:])
                elif stream and kind in (DATA, HEADERS, RST_STREAM):
                    self.stream_frames.append(kind)
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the server closed the connection

    def start_watch_call(self) -> None:
        """A call that stays in flight: grpc.health.v1.Health/Watch of the
        server's overall health (an empty request), on stream 1."""
        block = b"".join(
            _literal(name, value)
            for name, value in [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/grpc.health.v1.Health/Watch"),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]
        )
        self.writer.write(_frame(HEADERS, END_HEADERS, 1, block))
        self.writer.write(_frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x00"))  # uncompressed, 0 bytes

    def ping(self, n: int) -> None:
        self.writer.write(_frame(PING, 0, 0, n.to_bytes(8, "big")))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[GrpcService]:
    # Health checking only: every GrpcService has it.
    service = GrpcService("127.0.0.1:0", lambda server: None, [], grace_seconds=0.1)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_pings_every_10_s_are_accepted_with_and_without_a_call(server: GrpcService):
    idle, busy = await Connection.open(server.port), await Connection.open(server.port)
    readers = [asyncio.create_task(c.read_frames()) for c in (idle, busy)]
    try:
        busy.start_watch_call()
        for _ in range(50):  # the call's first answer (HEADERS, DATA): now it is in flight
            if DATA in busy.stream_frames:
                break
            await asyncio.sleep(0.05)
        assert busy.stream_frames[:2] == [HEADERS, DATA]
        for n in range(1, PINGS + 1):
            if n > 1:
                await asyncio.sleep(PING_EVERY)
            for connection in (idle, busy):
                connection.ping(n)
        await asyncio.sleep(1.0)  # for the last answers
        for connection in (idle, busy):
            assert connection.goaway is None, connection.goaway
            assert connection.ping_acks == [n.to_bytes(8, "big") for n in range(1, PINGS + 1)]
        assert busy.stream_frames == [HEADERS, DATA]  # still in flight: no trailers
    finally:
        for connection in (idle, busy):
            await connection.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def test_our_clients_ping_as_our_servers_allow():
    """What our own clients send (yztc.tls.open_channel) is within what our
    servers accept, calls or not, and the CONTRACT's 10 s is too."""
    client, server_ = dict(CLIENT_KEEPALIVE_OPTIONS), dict(SERVER_OPTIONS)
    assert client["grpc.keepalive_time_ms"] >= CLIENT_PING_INTERVAL_MIN_MS >= SERVER_MIN_RECV_PING_INTERVAL_MS
    assert server_["grpc.http2.min_ping_interval_without_data_ms"] == SERVER_MIN_RECV_PING_INTERVAL_MS
    assert client["grpc.keepalive_permit_without_calls"] == server_["grpc.keepalive_permit_without_calls"] == 1
    assert client["grpc.http2.max_pings_without_data"] == 0  # else gRPC core stops after two
