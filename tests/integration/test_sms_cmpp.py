"""The notifier's CMPP 3.0 link (sms_notifier/cmpp_link.py) against the
SMS-centre simulator's CMPP face (simulators/cmpp_server.py), both in
process on free ports: CONNECT and its refusal, a long UCS-2 message joined
by the centre with `source` = Src_Id, a status report per part settling the
ids SUBMIT_RESP gave, flow control (Result 8) backed off and retried,
a dropped connection reconnected, ACTIVE_TEST on a quiet link, TERMINATE
at stop. The same simulator is also driven by a raw CMPP client for what
the link never sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators import sms_centre
from simulators.cmpp_server import CmppServer, msg_id_for
from simulators.scenario import parse_scenario
from sms_notifier import smpp_status, ucs2_parts
from sms_notifier.cmpp_link import CmppLink, CmppSettings
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import Receipt
from yztc import cmpp

PHONE = "13800138000"
SP_ID = "901234"
SECRET = "s3cret-shared"
TEXT = "【一证通查】" + "您的手机号关联的互联网账号：腾讯3个（微信1个，QQ2个）、支付宝1个。" * 4


def _settings(port: int, **changes) -> CmppSettings:
    values = dict(host="127.0.0.1", port=port, source_addr=SP_ID, shared_secret=SECRET, service_id="YZTC", window=4)
    values.update(changes)
    return CmppSettings(**values)


class Centre:
    def __init__(self, server: CmppServer, port: int, http: TestClient) -> None:
        self.server, self.port, self.http = server, port, http

    @property
    def counters(self):
        return self.server.centre.counters

    async def messages(self) -> list[dict]:
        async with self.http.get("/messages", params={"dest": PHONE}) as resp:
            return (await resp.json())["messages"]


@pytest.fixture
async def centre_factory() -> AsyncIterator:
    running: list[Centre] = []

    async def make(behaviour: dict | None = None) -> Centre:
        scenario = parse_scenario({"sms_centre": behaviour or {}})
        centre = sms_centre.SmsCentre(scenario)
        server = CmppServer(centre, SP_ID, SECRET)
        _, port = await server.start("127.0.0.1", 0)
        http = TestClient(TestServer(sms_centre.create_app(scenario, centre=centre)))
        await http.start_server()
        running.append(Centre(server, port, http))
        return running[-1]

    yield make
    for c in running:
        await c.http.close()
        await c.server.stop()


@pytest.fixture
async def link_factory() -> AsyncIterator:
    links: list[CmppLink] = []

    async def make(port: int, **changes) -> tuple[CmppLink, list[Receipt]]:
        link = CmppLink(_settings(port, **changes), metrics=Metrics(), reconnect_min=0.05, reconnect_max=0.2)
        got: list[Receipt] = []

        async def on_receipt(receipt: Receipt) -> None:
            got.append(receipt)

        link.on_receipt = on_receipt
        await link.start()
        links.append(link)
        return link, got

    yield make
    for link in links:
        await link.close()


async def _until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_long_message_is_joined_and_every_part_reported(centre_factory, link_factory):
    centre = await centre_factory()
    link, receipts = await link_factory(centre.port)
    await asyncio.wait_for(link.bound.wait(), 5)
    parts = ucs2_parts.split(TEXT, ref=42)
    assert len(parts) == 3
    results = await asyncio.gather(*(link.submit(PHONE, part, time.monotonic() + 5) for part in parts))
    assert [r.verdict for r in results] == [smpp_status.Verdict.ACCEPTED] * 3
    ids = [r.smsc_message_id for r in results]
    assert len(set(ids)) == 3 and all(i and i.isdigit() for i in ids)
    await _until(lambda: len(receipts) == 3)
    assert sorted(r.smsc_message_id for r in receipts) == sorted(ids)
    assert all(r.stat == "DELIVRD" and r.delivered for r in receipts)
    [message] = await centre.messages()
    assert (message["source"], message["dest"], message["text"], message["segments"]) == ("10699000", PHONE, TEXT, 3)
    submits = centre.server.centre.submits
    assert [s["esm_class"] for s in submits] == [0x40] * 3 and {s["data_coding"] for s in submits} == {8}
    assert {s["registered_delivery"] for s in submits} == {1}


async def test_an_undeliverable_number_reports_undeliv(centre_factory, link_factory):
    centre = await centre_factory({"undeliverable": [PHONE]})
    link, receipts = await link_factory(centre.port)
    await asyncio.wait_for(link.bound.wait(), 5)
    [part] = ucs2_parts.split("您的验证码是123456，5分钟内有效。验证码请勿告知他人。", ref=1)
    result = await link.submit(PHONE, part, time.monotonic() + 5)
    await _until(lambda: len(receipts) == 1)
    assert receipts == [Receipt(result.smsc_message_id, "UNDELIV")]
    assert not receipts[0].delivered and receipts[0].final


async def test_a_wrong_secret_never_connects(centre_factory, link_factory):
    centre = await centre_factory()
    link, _ = await link_factory(centre.port, shared_secret="not-it")
    await _until(lambda: centre.counters["connect_failures"] >= 2)
    assert not link.bound.is_set()
    [part] = ucs2_parts.split("x", ref=1)
    result = await link.submit(PHONE, part, time.monotonic() + 1)
    assert (result.command_status, result.error) == (None, "not_bound")
    assert result.verdict is smpp_status.Verdict.TRANSIENT


async def test_flow_control_is_backed_off_and_the_part_sent_again(centre_factory, link_factory):
    centre = await centre_factory({"throttle": [{"after": 0, "for_ms": 300}]})
    link, _ = await link_factory(centre.port, flow_control_pause_seconds=0.1)
    await asyncio.wait_for(link.bound.wait(), 5)
    [part] = ucs2_parts.split("限流", ref=1)
    started = time.monotonic()
    result = await link.submit(PHONE, part, time.monotonic() + 5)
    assert result.verdict is smpp_status.Verdict.ACCEPTED
    assert time.monotonic() - started >= 0.25
    statuses = [s["status"] for s in centre.server.centre.submits]
    assert statuses[0] == "ESME_RTHROTTLED" and statuses[-1] == "ESME_ROK"
    # Spaced by the back-off, not hammered: a few tries in 0.3 s.
    assert 2 <= len(statuses) <= 5


async def test_flow_control_until_the_deadline_answers_result_8(centre_factory, link_factory):
    centre = await centre_factory({"throttle": [{"after": 0, "for_ms": 60000}]})
    link, _ = await link_factory(centre.port, flow_control_pause_seconds=0.1)
    await asyncio.wait_for(link.bound.wait(), 5)
    [part] = ucs2_parts.split("限流", ref=1)
    result = await link.submit(PHONE, part, time.monotonic() + 0.5)
    assert result.command_status == cmpp.RESULT_FLOW_CONTROL and result.throttled and result.error is None
    assert result.verdict is smpp_status.Verdict.TRANSIENT and result.reason == "CMPP_FLOW_CONTROL"


async def test_fail_rate_answers_an_other_error_worth_retrying(centre_factory, link_factory):
    centre = await centre_factory({"fail_rate": 1.0})
    link, _ = await link_factory(centre.port)
    await asyncio.wait_for(link.bound.wait(), 5)
    [part] = ucs2_parts.split("故障", ref=1)
    result = await link.submit(PHONE, part, time.monotonic() + 5)
    assert (result.command_status, result.smsc_message_id) == (14, None)
    assert result.verdict is smpp_status.Verdict.TRANSIENT and not result.throttled


async def test_a_dropped_connection_loses_the_answer_and_is_reconnected(centre_factory, link_factory):
    centre = await centre_factory({"drop_at": [1]})
    link, receipts = await link_factory(centre.port)
    await asyncio.wait_for(link.bound.wait(), 5)
    [part] = ucs2_parts.split("重连", ref=1)
    first = await link.submit(PHONE, part, time.monotonic() + 5)
    assert (first.command_status, first.error) == (None, "connection_lost")
    await _until(lambda: centre.counters["cmpp_connects"] == 2 and link.bound.is_set())
    second = await link.submit(PHONE, part, time.monotonic() + 5)
    assert second.verdict is smpp_status.Verdict.ACCEPTED
    await _until(lambda: [r.smsc_message_id for r in receipts] == [second.smsc_message_id])


async def test_a_quiet_link_sends_active_test_and_stop_terminates(centre_factory, link_factory):
    centre = await centre_factory()
    link, _ = await link_factory(centre.port, active_test_seconds=0.1)
    await asyncio.wait_for(link.bound.wait(), 5)
    await _until(lambda: centre.counters["active_tests"] >= 2)
    assert link.bound.is_set()
    await link.close()
    assert centre.counters["terminates"] == 1
    assert not link.bound.is_set()


# -- the simulator by a raw CMPP client ------------------------------------------------


class Sp:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0

    @classmethod
    async def connect(
        cls, port: int, secret: str = SECRET, version: int = cmpp.VERSION_30
    ) -> tuple[Sp, cmpp.ConnectResp]:
        sp = cls(*await asyncio.open_connection("127.0.0.1", port))
        sp.request_raw = cmpp.Connect.signed(SP_ID, secret, 1130120000, version)
        sp.seq += 1
        sp.writer.write(sp.request_raw.encode(sp.seq))
        head, body = await sp.read()
        assert head.command_id == cmpp.CONNECT_RESP and head.sequence_id == sp.seq
        return sp, cmpp.ConnectResp.decode(body)

    async def read(self) -> tuple[cmpp.Header, bytes]:
        head = cmpp.header(await asyncio.wait_for(self.reader.readexactly(12), 5))
        return head, await self.reader.readexactly(head.total_length - 12)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_connect_answers_with_the_ismg_authenticator_or_refuses(centre_factory):
    centre = await centre_factory()
    sp, resp = await Sp.connect(centre.port)
    assert resp.status == 0 and resp.version == 0x30
    assert resp.authenticator_ismg == cmpp.authenticator_ismg(0, sp.request_raw.authenticator_source, SECRET)
    await sp.close()
    bad, resp = await Sp.connect(centre.port, secret="wrong")
    assert resp.status == cmpp.CONNECT_AUTH_FAILED
    assert await bad.reader.read() == b""
    await bad.close()
    old, resp = await Sp.connect(centre.port, version=0x20)
    assert resp.status != 0
    await old.close()


async def test_report_before_submit_resp_and_active_test(centre_factory):
    centre = await centre_factory()
    sp, _ = await Sp.connect(centre.port)
    sp.writer.write(cmpp.active_test(50))
    head, body = await sp.read()
    assert (head.command_id, head.sequence_id, body) == (cmpp.ACTIVE_TEST_RESP, 50, b"\x00")
    submit = cmpp.Submit((PHONE,), "你好".encode("utf-16-be"), "10699000", SP_ID)
    sp.writer.write(submit.encode(51))
    got: dict[int, object] = {}
    while len(got) < 2:
        head, body = await sp.read()
        if head.command_id == cmpp.SUBMIT_RESP:
            got[cmpp.SUBMIT_RESP] = cmpp.SubmitResp.decode(body)
        elif head.command_id == cmpp.DELIVER:
            deliver = cmpp.Deliver.decode(body)
            got[cmpp.DELIVER] = deliver
            sp.writer.write(cmpp.DeliverResp(deliver.msg_id).encode(head.sequence_id))
    resp, deliver = got[cmpp.SUBMIT_RESP], got[cmpp.DELIVER]
    assert resp.result == 0
    report = deliver.status_report()
    assert report is not None and report.msg_id == resp.msg_id and report.stat == "DELIVRD"
    assert (deliver.dest_id, deliver.src_terminal_id, report.dest_terminal_id) == ("10699000", PHONE, PHONE)
    sp.writer.write(cmpp.terminate(52))
    head, _ = await sp.read()
    assert head.command_id == cmpp.TERMINATE_RESP
    await sp.close()
    [message] = await centre.messages()
    assert (message["source"], message["text"]) == ("10699000", "你好")


class _Knobs:
    """The scenario's behaviour with knobs added (receipt_before_resp comes
    with the scenario's receipt habits; until then it is set here)."""

    def __init__(self, base, **extra) -> None:
        self._base, self._extra = base, extra

    def __getattr__(self, name: str):
        return self._extra[name] if name in self._extra else getattr(self._base, name)


async def test_receipt_before_resp_writes_the_report_first(centre_factory):
    centre = await centre_factory()
    centre.server.centre.behaviour = _Knobs(centre.server.centre.behaviour, receipt_before_resp=True)
    sp, _ = await Sp.connect(centre.port)
    sp.writer.write(cmpp.Submit((PHONE,), "先报告".encode("utf-16-be"), "10699000", SP_ID).encode(60))
    head, body = await sp.read()
    assert head.command_id == cmpp.DELIVER
    deliver = cmpp.Deliver.decode(body)
    sp.writer.write(cmpp.DeliverResp(deliver.msg_id).encode(head.sequence_id))
    head, resp_body = await sp.read()
    assert (head.command_id, head.sequence_id) == (cmpp.SUBMIT_RESP, 60)
    report = deliver.status_report()
    assert report is not None and report.msg_id == cmpp.SubmitResp.decode(resp_body).msg_id
    await _until(lambda: centre.counters["cmpp_reports"] == 1)
    await sp.close()


async def test_a_malformed_deliver_is_answered_with_result_1(link_factory):
    got: list[bytes] = []

    async def ismg(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = cmpp.header(await reader.readexactly(12))
        connect = cmpp.Connect.decode(await reader.readexactly(head.total_length - 12))
        auth = cmpp.authenticator_ismg(0, connect.authenticator_source, SECRET)
        writer.write(cmpp.ConnectResp(0, auth, 0x30).encode(head.sequence_id))
        good = cmpp.Deliver.report(9, "10699000", cmpp.Report(5, "DELIVRD", "2611301200", "2611301201", PHONE))
        # Framed right, but the body one octet short (LinkID 19 octets).
        writer.write(cmpp.message(cmpp.DELIVER, 8, good.encode(8)[12:-1]))
        head = cmpp.header(await reader.readexactly(12))
        got.append(head.command_id.to_bytes(4, "big") + await reader.readexactly(head.total_length - 12))
        await reader.read()
        writer.close()

    server = await asyncio.start_server(ismg, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link, receipts = await link_factory(port)
    await _until(lambda: bool(got))
    assert got[0][:4] == cmpp.DELIVER_RESP.to_bytes(4, "big")
    assert cmpp.DeliverResp.decode(got[0][4:]) == cmpp.DeliverResp(9, 1)
    assert receipts == []
    await link.close()
    server.close()
    await server.wait_closed()


def test_msg_ids_stand_for_the_centres_ids() -> None:
    assert msg_id_for("0d2b5e44") == 0x0D2B5E44
    assert msg_id_for("ffffffffffffffff") == 2**64 - 1
    other = msg_id_for("not-hex-id")
    assert 0 <= other < 2**64 and other == msg_id_for("not-hex-id")
