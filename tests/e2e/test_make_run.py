"""`make run`'s program, run exactly as the Makefile runs it (`python -m
devstack`, here on free ports with its own data folder): it says a line per
service when ready and nothing of the services' own output; the
environment's YZTC_* settings reach the services, the stack's own addresses
stay the stack's; a service killed with SIGKILL is started again while the
others stay up, and a query then completes end to end; Ctrl-C ends it with
status 0, no process left, and no traceback anywhere."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from devstack.stack import ROOT, free_port
from devstack.supervisor import port_open

PHONE, ID_LAST6 = "13800138000", "12345X"  # the default scenario's first demo phone
OTHER_PHONE = "18600186000"
SERVICES = {
    "ferretdb",
    "simulators",
    "sms_notifier",
    "aggregator",
    "gateway",
    *(f"connector-{e}" for e in ("tencent", "alibaba", "alipay", "baidu", "kuaishou", "douyin", "jd", "meituan")),
    *(f"connector-{o}" for o in ("cmcc", "cucc", "ctcc", "cbn")),
}
CODE = re.compile(r"验证码为(\d{6})")


class Output:
    """A process's output as it comes (read by a thread), so that the test
    can wait for a line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        with stream:
            for line in stream:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> int:
        """The index of the first line from `start` on that matches."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = start
        with self._changed:
            while True:
                while index < len(self.lines):
                    if regex.search(self.lines[index]):
                        return index
                    index += 1
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r}; the output ends with:\n" + "\n".join(self.lines[-40:])
                    )
                self._changed.wait(left)

    def finish(self, timeout: float) -> str:
        self._reader.join(timeout)
        return "\n".join(self.lines)


def _children(pid: int) -> dict[int, str]:
    """The direct children of `pid`: {pid: command line}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port(listing: str, pattern: str) -> int:
    match = re.search(pattern, listing)
    assert match, f"{pattern!r} not in the listing:\n{listing}"
    return int(match.group(1))


async def _latest_code(http: aiohttp.ClientSession, smsc: str, phone: str) -> str:
    """The code the SMS centre simulator received for the phone (it arrives
    moments after the request is answered: the notifier queues it)."""
    for _ in range(100):
        async with http.get(f"{smsc}/messages", params={"dest": phone}) as response:
            messages = (await response.json())["messages"]
        codes = [c.group(1) for m in messages if (c := CODE.search(m["text"]))]
        if codes:
            return codes[-1]
        await asyncio.sleep(0.1)
    raise AssertionError("no verification SMS reached the SMS centre")


async def _query_end_to_end(http: aiohttp.ClientSession, base: str, smsc: str) -> tuple[dict, list[dict]]:
    """Session, code by SMS, query over HTTP; (the finished query, the result SMS)."""
    async with http.post(f"{base}/api/v1/sessions", json={"auth_code": "demo-auth-code"}) as r:
        assert r.status == 200, await r.text()
        headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
    async with http.post(f"{base}/api/v1/verification-codes", json={"phone": PHONE}, headers=headers) as r:
        assert r.status == 202, await r.text()
    code = await _latest_code(http, smsc, PHONE)
    body = {"phone": PHONE, "id_last6": ID_LAST6, "code": code, "consent": True}
    async with http.post(f"{base}/api/v1/queries", json=body, headers=headers) as r:
        assert r.status == 202, await r.text()
        query_id = (await r.json())["query_id"]
    deadline = time.monotonic() + 90
    while True:
        async with http.get(f"{base}/api/v1/queries/{query_id}", headers=headers) as r:
            assert r.status == 200, await r.text()
            query = await r.json()
        if query["status"] != "IN_PROGRESS" and query["sms"]["state"] != "PENDING":
            break
        assert time.monotonic() < deadline, f"query still {query['status']}, SMS {query['sms']['state']}"
        await asyncio.sleep(0.2)
    async with http.get(f"{smsc}/messages", params={"dest": PHONE}) as r:
        results = [m for m in (await r.json())["messages"] if "关联的互联网账号" in m["text"]]
    return query, results


async def _code_request_status(http: aiohttp.ClientSession, base: str, phone: str) -> tuple[int, dict]:
    async with http.post(f"{base}/api/v1/sessions", json={"auth_code": "demo-auth-code-2"}) as r:
        assert r.status == 200, await r.text()
        headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
    async with http.post(f"{base}/api/v1/verification-codes", json={"phone": phone}, headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.timeout(480)
async def test_make_run_restarts_a_killed_service_and_stops_cleanly(tmp_path):
    var = tmp_path / "var"
    typed = free_port()  # an address someone might export for the gateway
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
    env.update(
        YZTC_DEVSTACK_FREE_PORTS="1",
        YZTC_DEVSTACK_VAR=str(var),
        PYTHONUNBUFFERED="1",
        # A production setting: reaches the gateway (the default allows 60).
        YZTC_GATEWAY_LIMIT_IP_CODES="1/3600",
        # The stack's own: ignored, and said so.
        YZTC_GATEWAY_LISTEN=f"127.0.0.1:{typed}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    out = Output(proc.stdout)
    children: dict[int, str] = {}
    try:
        running = await asyncio.to_thread(out.wait_for, r"^yztc is running", 180)
        # Quiet: a line per service when ready, the variable it ignored,
        # nothing of what the services write.
        before = out.lines[:running]
        ready = [line.split()[1] for line in before if line.startswith("  ready ")]
        assert sorted(ready) == sorted(SERVICES), before
        others = [
            line for line in before if line.strip() and not line.startswith(("  ready ", "starting the yztc stack"))
        ]
        assert others == ["  not passed on, the stack sets these itself: YZTC_GATEWAY_LISTEN"], before
        end = await asyncio.to_thread(out.wait_for, r"Ctrl-C stops everything", 10, running)
        listing = "\n".join(out.lines[running:end])
        for name in SERVICES:
            assert f"  {name} " in listing, listing
        gateway = _port(listing, r"gateway\s+http://127\.0\.0\.1:(\d+)")
        smsc_port = _port(listing, r"SMS centre http://127\.0\.0\.1:(\d+)/messages")
        smsc = f"http://127.0.0.1:{smsc_port}"
        base = f"http://127.0.0.1:{gateway}"
        # The stack's own address won over the environment's.
        assert gateway != typed and port_open(gateway) and not port_open(typed)

        children = _children(proc.pid)
        assert len(children) == len(SERVICES), children
        aggregator = next(pid for pid, cmd in children.items() if " -m aggregator" in cmd)
        os.kill(aggregator, signal.SIGKILL)
        exited = await asyncio.to_thread(
            out.wait_for, r"^  exited   aggregator +\(killed by SIGKILL\) after \d+ s; restart 1 in 1 s", 30, end
        )
        await asyncio.to_thread(out.wait_for, r"^  ready    aggregator .*\(restart 1\)$", 90, exited)
        now = _children(proc.pid)
        assert aggregator not in now and len(now) == len(SERVICES), now
        # The others stayed up, the very same processes.
        assert {p for p in children if p != aggregator} <= now.keys()
        children.update(now)

        async with aiohttp.ClientSession() as http:
            query, results = await _query_end_to_end(http, base, smsc)
            assert query["status"] == "COMPLETED", query
            assert all(e["state"] == "DONE" for e in query["enterprises"]), query
            assert len(results) == 1 and results[0]["source"] == "10699000", results
            # The passed-on limit: one code per client address per hour.
            status, answer = await _code_request_status(http, base, OTHER_PHONE)
            assert status == 429 and answer["error"]["code"] == "RATE_LIMITED", (status, answer)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid in children:  # whatever outlived a failed stop
                if _alive(pid):
                    os.killpg(pid, signal.SIGKILL)
    text = out.finish(timeout=10)
    assert proc.returncode == 0, text[-3000:]
    assert text.rstrip().endswith("stopped."), text[-3000:]
    assert not [pid for pid in children if _alive(pid)]
    logs = sorted((var / "logs").glob("*.log"))
    assert {p.stem for p in logs} == SERVICES
    for where, content in [("the output", text), *((p.name, p.read_text(errors="replace")) for p in logs)]:
        assert "Traceback" not in content, f"a traceback in {where}:\n{content[-3000:]}"
        assert PHONE not in content and OTHER_PHONE not in content, f"a phone number in {where}"


def test_ctrl_c_while_starting_stops_what_started(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
    env.update(YZTC_DEVSTACK_FREE_PORTS="1", YZTC_DEVSTACK_VAR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    out = Output(proc.stdout)
    children: dict[int, str] = {}
    try:
        out.wait_for(r"^  ready    ferretdb ", 60)
        children = _children(proc.pid)
        assert children, "nothing started"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid in children:
                if _alive(pid):
                    os.killpg(pid, signal.SIGKILL)
    text = out.finish(timeout=10)
    assert proc.returncode == 0, text
    assert "yztc is running" not in text and text.rstrip().endswith("stopped."), text
    assert "Traceback" not in text, text
    assert not [pid for pid in children if _alive(pid)]
