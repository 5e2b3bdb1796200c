"""What the SMS tests share (this module holds no tests): the SMS-centre
simulator (`python -m simulators`) and the notifier (`python -m
sms_notifier`) as real processes on free ports, started and stopped by PID,
and small clients for the notifier's gRPC API and the simulator's
inspection API."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp
import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.stack import free_port
from yztc.v1 import sms_notifier_pb2 as pb
from yztc.v1 import sms_notifier_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
SMPP_PASSWORD = "s3cret!"
DATA_KEY = base64.b64encode(bytes(range(32))).decode()
STATES = {v: k.removeprefix("STATE_") for k, v in pb.SmsStatus.State.items()}
PHONE = "13800138000"
# A result SMS as the aggregator words it: 147 characters, three UCS-2 parts (67 + 67 + 13).
RESULT_TEXT = (
    "【一证通查】您的手机号138****8000关联的互联网账号：腾讯3个（微信1个、QQ2个）、阿里巴巴0个、支付宝1个、"
    "百度0个、快手0个、抖音1个、京东暂未返回、美团2个。如需查看明细或解绑，请在一证通查小程序进入“解绑与明细查询”，"
    "按各企业指引办理。本短信由10699000发送，请勿回复。"
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
    env.update(PYTHONUNBUFFERED="1", **extra)

    return env


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    log: Path
    stderr: TextIO
    lines: list[str] = field(default_factory=list)

    def _close_pipes(self) -> None:
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.stderr.close()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit code (SIGKILL if it does not stop in time)."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._close_pipes()
        return self.popen.returncode

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._close_pipes()


def _start(args: list[str], env: dict[str, str], log: Path, ready_lines: int, marker: str) -> Proc:
    stderr = log.open("w", encoding="utf-8")
    popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    proc = Proc(popen, log, stderr)
    assert popen.stdout is not None
    deadline = time.monotonic() + 30
    while len(proc.lines) < ready_lines:
        line = popen.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"{args} ended before it was ready:\n{log.read_text()[-3000:]}")
        if marker in line:
            proc.lines.append(line.strip())
        assert time.monotonic() < deadline, "start-up took over 30 s"
    return proc


@dataclass
class SmsCentre:
    proc: Proc
    http: str  # base URL of the inspection API
    smpp_port: int

    async def messages(self, dest: str | None = None) -> list[dict]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.http}/messages", params={"dest": dest} if dest else {}) as resp:
                assert resp.status == 200
                return (await resp.json())["messages"]

    async def submits(self, dest: str | None = None) -> list[dict]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.http}/sim/submits", params={"dest": dest} if dest else {}) as resp:
                return (await resp.json())["submits"]

    async def counters(self) -> dict[str, int]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.http}/sim/smpp") as resp:
                return await resp.json()


@pytest.fixture(scope="session")
def alipay_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The simulators need the Alipay simulator's key files to start at all."""
    folder = tmp_path_factory.mktemp("sim-keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = folder / "sim-private.pem", folder / "app-public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def start_sms_centre(
    tmp_path: Path,
    keys: tuple[Path, Path],
    sms_centre: dict | None = None,
    smpp_port: int = 0,
    extra_env: dict[str, str] | None = None,
) -> SmsCentre:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"sms_centre": sms_centre or {}}), encoding="utf-8")
    env = _clean_env(
        YZTC_SCENARIO=str(scenario),
        YZTC_SIM_COMPANIES_LISTEN="127.0.0.1:0",
        YZTC_SIM_OPERATORS_LISTEN="127.0.0.1:0",
        YZTC_SIM_ALIPAY_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMSC_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMPP_LISTEN=f"127.0.0.1:{smpp_port}",
        YZTC_SIM_CMPP_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMPP_PASSWORD=SMPP_PASSWORD,
        YZTC_SIM_ALIPAY_PRIVATE_KEY_FILE=str(keys[0]),
        YZTC_SIM_ALIPAY_APP_PUBLIC_KEY_FILE=str(keys[1]),
        **(extra_env or {}),
    )
    proc = _start([sys.executable, "-m", "simulators"], env, tmp_path / "simulators.log", 6, " listening on ")
    urls = dict(line.removeprefix("simulators: ").split(" listening on ") for line in proc.lines)
    return SmsCentre(proc, urls["sms_centre"], int(urls["sms_centre_smpp"].rsplit(":", 1)[1]))


@pytest.fixture
def sms_centre_factory(tmp_path: Path, alipay_keys: tuple[Path, Path]) -> Iterator:
    started: list[SmsCentre] = []

    def make(behaviour: dict | None = None, smpp_port: int = 0, extra_env: dict[str, str] | None = None) -> SmsCentre:
        centre = start_sms_centre(tmp_path, alipay_keys, behaviour, smpp_port, extra_env)
        started.append(centre)
        return centre

    yield make
    for centre in started:
        assert centre.proc.stop() == 0, centre.proc.log.read_text()[-3000:]


@dataclass
class Notifier:
    proc: Proc
    target: str

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.target)


def start_notifier(
    tmp_path: Path,
    mongodb_uri: str,
    smpp_port: int,
    name: str = "notifier",
    extra_env: dict[str, str] | None = None,
    **settings: str,
) -> Notifier:
    port = free_port()
    values = dict(
        MONGODB_URI=mongodb_uri,
        # Plaintext gRPC (these tests are about SMS; test_sms_notifier_tls gives certificates).
        YZTC_DEVELOPMENT="1",
        YZTC_NOTIFIER_LISTEN=f"127.0.0.1:{port}",
        YZTC_NOTIFIER_SMSC_PORT=str(smpp_port),
        YZTC_NOTIFIER_PASSWORD=SMPP_PASSWORD,
        YZTC_NOTIFIER_DATA_KEY=DATA_KEY,
        YZTC_NOTIFIER_POLL_SECONDS="0.2",
        YZTC_NOTIFIER_RETRY_MIN_SECONDS="0.2",
        YZTC_NOTIFIER_THROTTLE_PAUSE_SECONDS="0.3",
        **{f"YZTC_NOTIFIER_{k.upper()}": v for k, v in settings.items()},
    )
    env = _clean_env(**{**values, **(extra_env or {})})  # extra_env wins (e.g. a database of the test's own)
    proc = _start([sys.executable, "-m", "sms_notifier"], env, tmp_path / f"{name}.log", 1, "listening on")
    return Notifier(proc, f"127.0.0.1:{port}")


@pytest.fixture
def notifier_factory(tmp_path: Path, mongodb_uri: str) -> Iterator:
    started: list[Notifier] = []

    def make(
        smpp_port: int, name: str = "notifier", extra_env: dict[str, str] | None = None, **settings: str
    ) -> Notifier:
        notifier = start_notifier(tmp_path, mongodb_uri, smpp_port, name, extra_env, **settings)
        started.append(notifier)
        return notifier

    yield make
    for notifier in started:
        if notifier.proc.popen.poll() is None:
            code = notifier.proc.stop()
            assert code == 0, f"notifier exited with {code}:\n{notifier.proc.log.read_text()[-3000:]}"


async def send(channel: grpc.aio.Channel, message_id: str, dest: str, text: str, attempt: int = 1) -> pb.SmsStatus:
    """Send, by default as the caller's first attempt for this message id
    (as the aggregator sends a new message); 0 or >= 2: maybe not the first."""
    stub = sms_notifier_pb2_grpc.SmsNotifierStub(channel)
    return await stub.Send(pb.SendRequest(message_id=message_id, dest=dest, text=text, attempt=attempt), timeout=10)


async def status(channel: grpc.aio.Channel, message_id: str) -> pb.SmsStatus:
    stub = sms_notifier_pb2_grpc.SmsNotifierStub(channel)
    return await stub.GetStatus(pb.GetStatusRequest(message_id=message_id), timeout=10)


async def wait_for_states(
    channel: grpc.aio.Channel, message_ids: list[str], states: set[str], timeout: float = 30.0
) -> dict[str, pb.SmsStatus]:
    """Polls GetStatus until every message is in one of `states` (asking
    again only about the others: each question is a database read)."""
    deadline = time.monotonic() + timeout
    found: dict[str, pb.SmsStatus] = {}
    waiting = list(message_ids)
    while True:
        for chunk in range(0, len(waiting), 20):
            ids = waiting[chunk : chunk + 20]
            found.update(zip(ids, await asyncio.gather(*(status(channel, m) for m in ids)), strict=False))
        waiting = [m for m in waiting if STATES[found[m].state] not in states]
        if not waiting:
            return found
        assert time.monotonic() < deadline, f"{len(waiting)} not yet {states}: e.g. {found[waiting[0]]}"
        await asyncio.sleep(0.3)


async def wait_for_receipts(centre: SmsCentre, count: int, timeout: float = 40.0) -> None:
    """Until the centre has sent `count` receipts (asks the simulator, not the database)."""
    deadline = time.monotonic() + timeout
    while (await centre.counters()).get("receipts", 0) < count:
        assert time.monotonic() < deadline, f"fewer than {count} receipts after {timeout} s: {await centre.counters()}"
        await asyncio.sleep(0.2)


def per_second(submits: list[dict]) -> Counter[int]:
    """submit_sm received by the centre per wall-clock second."""
    return Counter(int(s["at"]) for s in submits)
