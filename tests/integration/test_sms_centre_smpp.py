"""The SMS-centre simulator's SMPP face, in process, driven PDU by PDU by a
raw client (PDUs built with smpp34's codec): binds and passwords, joining
concatenated parts, receipts, and the scenario's throttling, invalid
destinations and dropped connections; the CONTRACT's inspection API shows
what arrived."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest
import smpp34
from aiohttp.test_utils import TestClient, TestServer

from simulators import sms_centre
from simulators.scenario import parse_scenario
from simulators.smpp_server import SmppServer

PHONE = "13800138000"
TEXT = "【一证通查】" + "您的手机号关联的互联网账号：腾讯3个、支付宝1个。" * 4


def _pdu(command_id: int, seq: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


class Esme:
    """Just enough of an ESME to poke the simulator with."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0

    @classmethod
    async def connect(cls, port: int) -> Esme:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def read(self) -> tuple[int, int, int, bytes]:
        header = await asyncio.wait_for(self.reader.readexactly(16), 5)
        length, command_id, status, seq = struct.unpack(">IIII", header)
        return command_id, status, seq, header + await self.reader.readexactly(length - 16)

    async def request(self, command_id: int, body: bytes = b"") -> int:
        self.seq += 1
        self.writer.write(_pdu(command_id, self.seq, body))
        await self.writer.drain()
        return self.seq

    async def bind(self, password: str = "pw") -> int:
        await self.request(0x09, b"yztc\x00" + password.encode() + b"\x00\x00\x34\x00\x00\x00")
        command_id, status, _, _ = await self.read()
        assert command_id == 0x80000009
        return status

    async def submit(self, short_message: bytes, dest: str = PHONE, esm_class: int = 0) -> None:
        self.seq += 1
        pdu = smpp34.SubmitSm(
            "10699000",
            dest,
            short_message,
            source_addr_ton=3,
            esm_class=esm_class,
            data_coding=8,
            registered_delivery=1,
            sequence_number=self.seq,
        )
        self.writer.write(pdu.encode())
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _parts(text: str, ref: int) -> list[bytes]:
    units = text.encode("utf-16-be")
    chunks = [units[i : i + 134] for i in range(0, len(units), 134)]
    return [bytes([5, 0, 3, ref, len(chunks), n]) + c for n, c in enumerate(chunks, start=1)]


@pytest.fixture
async def centre_factory() -> AsyncIterator:
    running: list[tuple[SmppServer, TestClient]] = []

    async def make(behaviour: dict | None = None) -> tuple[int, TestClient]:
        scenario = parse_scenario({"sms_centre": behaviour or {}})
        centre = sms_centre.SmsCentre(scenario)
        server = SmppServer(centre, "yztc", "pw")
        _, port = await server.start("127.0.0.1", 0)
        http = TestClient(TestServer(sms_centre.create_app(scenario, centre=centre)))
        await http.start_server()
        running.append((server, http))
        return port, http

    yield make
    for server, http in running:
        await http.close()
        await server.stop()


async def test_a_wrong_password_is_refused_and_the_connection_closed(centre_factory):
    port, http = await centre_factory()
    esme = await Esme.connect(port)
    assert await esme.bind("wrong") == 0x0E  # ESME_RINVPASWD
    assert await esme.reader.read() == b""
    await esme.close()
    async with http.get("/sim/smpp") as resp:
        assert (await resp.json())["bind_failures"] == 1


async def test_parts_out_of_order_become_one_message_with_a_receipt_per_part(centre_factory):
    port, http = await centre_factory()
    esme = await Esme.connect(port)
    assert await esme.bind() == 0
    await esme.request(0x15)  # enquire_link
    assert (await esme.read())[:2] == (0x80000015, 0)
    parts = _parts(TEXT, ref=77)
    assert len(parts) == 2
    ids = {}
    receipts = []
    for part in reversed(parts):
        await esme.submit(part, esm_class=0x40)
    while len(ids) < 2 or len(receipts) < 2:
        command_id, status, seq, raw = await esme.read()
        if command_id == 0x80000004:
            assert status == 0
            ids[seq] = raw[16:].rstrip(b"\x00").decode()
        elif command_id == 0x05:  # deliver_sm: a receipt; acknowledge it
            receipts.append(smpp34.decode(raw))
            esme.writer.write(_pdu(0x80000005, seq, b"\x00"))
    async with http.get("/messages", params={"dest": PHONE}) as resp:
        [message] = (await resp.json())["messages"]
    assert set(message) == {"source", "dest", "text", "segments", "received_at"}
    assert (message["source"], message["dest"], message["text"], message["segments"]) == ("10699000", PHONE, TEXT, 2)
    for receipt in receipts:
        assert receipt.esm_class == 0x04 and receipt.source_addr == PHONE and receipt.destination_addr == "10699000"
        tlvs = {t.tag: t.value for t in receipt.tlvs}
        assert tlvs[0x0427] == bytes([2])  # message_state DELIVERED
        assert b"stat:DELIVRD" in receipt.short_message
    assert {smpp34.decode(r.encode()).tlvs[0].value.rstrip(b"\x00").decode() for r in receipts} == set(ids.values())
    await esme.close()


async def test_throttling_invalid_destinations_and_a_dropped_connection(centre_factory):
    port, http = await centre_factory({"throttle": [{"after": 1, "for_ms": 60000}], "drop_at": [4]})
    esme = await Esme.connect(port)
    assert await esme.bind() == 0
    await esme.submit("一".encode("utf-16-be"), dest="12345")  # 1st: not a mobile number
    assert (await esme.read())[1] == 0x0B  # ESME_RINVDSTADR
    await esme.submit("二".encode("utf-16-be"))  # 2nd and 3rd: in the throttling spell
    await esme.submit("三".encode("utf-16-be"))
    assert [(await esme.read())[1] for _ in range(2)] == [0x58, 0x58]  # ESME_RTHROTTLED
    await esme.submit("四".encode("utf-16-be"))  # 4th: the connection drops, unanswered
    assert await esme.reader.read() == b""
    await esme.close()
    async with http.get("/sim/submits") as resp:
        statuses = [s["status"] for s in (await resp.json())["submits"]]
    assert statuses == ["ESME_RINVDSTADR", "ESME_RTHROTTLED", "ESME_RTHROTTLED", "dropped"]
    async with http.get("/messages") as resp:
        assert (await resp.json())["messages"] == []


async def test_receipts_missed_by_a_gone_session_come_on_the_next_bind(centre_factory):
    port, http = await centre_factory({"receipt_delay_ms": 300})
    first = await Esme.connect(port)
    assert await first.bind() == 0
    await first.submit("五".encode("utf-16-be"))
    assert (await first.read())[:2] == (0x80000004, 0)
    await first.close()  # gone before the receipt is due
    second = await Esme.connect(port)
    assert await second.bind() == 0
    command_id, _, seq, raw = await second.read()
    assert command_id == 0x05 and b"stat:DELIVRD" in smpp34.decode(raw).short_message
    second.writer.write(_pdu(0x80000005, seq, b"\x00"))
    await second.close()
