"""CMPP 3.0 against a peer we did not write: SMSGate's sms-core 2.1.13.5
(tests/peers/cmpp_sms_core, built by `make cmpp-sms-core`). As an ISMG it
checks our CONNECT authenticator, decodes our long UCS-2 SUBMIT parts and
joins them with its own code, and sends DELIVRD reports that must reach our
link as receipts for the ids it gave. As an SP it connects to our simulator,
submits a long message split by its own code and gets our reports."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators import sms_centre
from simulators.cmpp_server import CmppServer
from simulators.scenario import parse_scenario
from sms_notifier import smpp_status, ucs2_parts
from sms_notifier.cmpp_link import CmppLink, CmppSettings
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import Receipt

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "peers" / "cmpp_sms_core"
JAR = PEER / "target" / "cmpp-peer.jar"
PHONE = "13800138000"
SP_ID = "901234"
SECRET = "s3cret-shared"
RESULT_TEXT = (
    "【一证通查】138****8000：腾讯3个（微信1个，QQ2个），支付宝1个，百度0个，快手0个，抖音暂未返回，"
    "京东1个，美团0个，阿里巴巴2个。解绑与明细查询请到各企业客服。"
)


class SmsCore:
    """CmppPeer.java as a process; its JSON lines collected by a reader thread."""

    def __init__(self, args: list[str], log: Path) -> None:
        self._stderr = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            ["java", "-jar", str(JAR), *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self._lock:
                    self.events.append(json.loads(line))

    def of(self, kind: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["event"] == kind]

    async def wait_for(self, kind: str, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(found := self.of(kind)) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"sms-core: {count} {kind!r} not seen in {timeout} s; got {self.events}")
            await asyncio.sleep(0.05)
        return found

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sms_core(tmp_path: Path) -> Iterator:
    if shutil.which("java") is None:
        pytest.fail("java is not installed (the CMPP peer test needs Java 17)")
    subprocess.run(["make", "-s", "cmpp-sms-core"], cwd=ROOT, check=True, timeout=600)
    started: list[SmsCore] = []

    def start(*args: str) -> SmsCore:
        started.append(SmsCore(list(args), tmp_path / f"sms-core-{len(started)}.log"))
        return started[-1]

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
async def link_factory() -> AsyncIterator:
    links: list[CmppLink] = []

    def make(port: int) -> tuple[CmppLink, list[Receipt]]:
        settings = CmppSettings(
            host="127.0.0.1", port=port, source_addr=SP_ID, shared_secret=SECRET, service_id="YZTC", window=16
        )
        link = CmppLink(settings, metrics=Metrics(), reconnect_min=0.2, reconnect_max=0.5)
        got: list[Receipt] = []

        async def on_receipt(receipt: Receipt) -> None:
            got.append(receipt)

        link.on_receipt = on_receipt
        links.append(link)
        return link, got

    yield make
    for link in links:
        await link.close()


async def test_our_link_to_sms_core_as_the_ismg(sms_core, link_factory):
    port = _free_port()
    peer = sms_core("server", str(port), SP_ID, SECRET)
    await peer.wait_for("listening", 1)
    link, receipts = link_factory(port)
    await link.start()
    await asyncio.wait_for(link.bound.wait(), 30)  # sms-core checked our AuthenticatorSource; we checked its ISMG one
    await peer.wait_for("connected", 1)

    parts = ucs2_parts.split(RESULT_TEXT, ref=0x5A)
    assert len(parts) == 2
    results = await asyncio.gather(*(link.submit(PHONE, p, time.monotonic() + 20) for p in parts))
    assert [r.verdict for r in results] == [smpp_status.Verdict.ACCEPTED] * 2

    [message] = await peer.wait_for("message", 1)
    assert (message["text"], message["dest"], message["src_id"], message["parts"]) == (
        RESULT_TEXT,
        PHONE,
        "10699000",
        2,
    )
    submits = await peer.wait_for("submit", 2)
    for n, submit in enumerate(sorted(submits, key=lambda s: s["pk_number"]), start=1):
        assert (submit["pk_total"], submit["pk_number"], submit["tp_udhi"], submit["msg_fmt"]) == (2, n, 1, 8)
        assert (submit["registered_delivery"], submit["src_id"], submit["msg_src"], submit["service_id"]) == (
            1,
            "10699000",
            SP_ID,
            "YZTC",
        )
    # The ids sms-core gave, in our form (unsigned decimal of the 8 octets)...
    given = sorted(str(int(s["msg_id"], 16)) for s in submits)
    assert sorted(r.smsc_message_id for r in results) == given
    # ...and its DELIVRD reports reached us as receipts for exactly those.
    deadline = time.monotonic() + 20
    while len(receipts) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert sorted(r.smsc_message_id for r in receipts) == given
    assert all(r.stat == "DELIVRD" and r.delivered for r in receipts)
    acked = await peer.wait_for("report_acked", 2)
    assert [a["result"] for a in acked] == [0, 0]


async def test_sms_core_as_an_sp_drives_our_simulator(sms_core):
    scenario = parse_scenario({})
    centre = sms_centre.SmsCentre(scenario)
    server = CmppServer(centre, SP_ID, SECRET)
    _, port = await server.start("127.0.0.1", 0)
    http = TestClient(TestServer(sms_centre.create_app(scenario, centre=centre)))
    await http.start_server()
    try:
        peer = sms_core("client", "127.0.0.1", str(port), SP_ID, SECRET, PHONE, "10699000", RESULT_TEXT)
        await peer.wait_for("connected", 1)
        responses = await peer.wait_for("submit_resp", 2)
        assert [r["result"] for r in responses] == [0, 0]
        reports = await peer.wait_for("report", 2)
        assert sorted(r["msg_id"] for r in reports) == sorted(r["msg_id"] for r in responses)
        assert {(r["stat"], r["dest"]) for r in reports} == {("DELIVRD", PHONE)}
        async with http.get("/messages", params={"dest": PHONE}) as resp:
            [message] = (await resp.json())["messages"]
        assert (message["source"], message["dest"], message["text"], message["segments"]) == (
            "10699000",
            PHONE,
            RESULT_TEXT,
            2,
        )
        assert {s["data_coding"] for s in centre.submits} == {8}
        assert centre.counters["cmpp_connects"] == 1 and centre.counters["cmpp_reports"] == 2
    finally:
        await http.close()
        await server.stop()
