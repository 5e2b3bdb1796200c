"""The notifier against an SMS centre we did not write: node-smpp's server
(npm `smpp`, tests/peers/node_smpp/smsc.js), which decodes our submit_sm
with its own code, joins the parts by their UDH and pushes receipts. Our
client is checked against someone else's reading of SMPP 3.4."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_sms_support import (  # noqa: F401  (fixtures)
    PHONE,
    RESULT_TEXT,
    ROOT,
    SMPP_PASSWORD,
    STATES,
    notifier_factory,
    send,
    wait_for_states,
)

PEER = ROOT / "tests" / "peers" / "node_smpp"


class NodeSmsc:
    """smsc.js as a process; its JSON lines collected by a reader thread."""

    def __init__(self, log: Path) -> None:
        env = {**os.environ, "SMSC_PORT": "0", "SMSC_SYSTEM_ID": "yztc", "SMSC_PASSWORD": SMPP_PASSWORD}
        self._stderr = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            ["node", "smsc.js"], cwd=PEER, env=env, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = self.wait_for(lambda e: e["event"] == "listening", 10)["port"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def of(self, kind: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["event"] == kind]

    def wait_for(self, matches, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [e for e in self.events if matches(e)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"node-smpp: nothing matching within {timeout} s; got {self.events}")

    def stop(self) -> int:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return code


@pytest.fixture
def node_smsc(tmp_path: Path) -> Iterator[NodeSmsc]:
    if shutil.which("node") is None:
        pytest.fail("node is not installed (the peer test needs Node.js)")
    if not (PEER / "node_modules" / "smpp").is_dir():
        subprocess.run(["make", "node-smpp"], cwd=ROOT, check=True, timeout=300)
    smsc = NodeSmsc(tmp_path / "node-smsc.log")
    yield smsc
    assert smsc.stop() == 0


async def test_three_part_result_sms_through_node_smpp(node_smsc: NodeSmsc, notifier_factory):
    # The peer writes receipt dates in UTC (smsc.js `stamp`), not China time.
    notifier = notifier_factory(node_smsc.port, smsc_utc_offset_minutes="0")
    async with notifier.channel() as channel:
        accepted = await send(channel, "result:node-1", PHONE, RESULT_TEXT)
        # SENT, or DELIVERED when the peer's receipt came before the answer.
        assert STATES[accepted.state] in {"SENT", "DELIVERED"} and len(accepted.smsc_message_ids) == 3
        final = (await wait_for_states(channel, ["result:node-1"], {"DELIVERED", "FAILED"}))["result:node-1"]

    assert node_smsc.of("bound") == [{"event": "bound", "system_id": "yztc"}]
    [message] = node_smsc.of("message")
    assert message == {"event": "message", "source": "10699000", "dest": PHONE, "text": RESULT_TEXT, "segments": 3}
    parts = node_smsc.of("part")
    assert len(parts) == 3
    refs = set()
    for seq, part in enumerate(parts, start=1):
        assert part["data_coding"] == 8 and part["esm_class"] & 0x40 and part["registered_delivery"] == 1
        assert (part["source_addr"], part["source_addr_ton"], part["source_addr_npi"]) == ("10699000", 3, 0)
        [udh] = part["udh"]
        assert udh.startswith("0003") and udh.endswith(f"03{seq:02x}")
        refs.add(udh[4:6])
    assert len(refs) == 1  # one reference for the three parts
    # The peer logs each deliver_sm_resp it gets; the last may come a moment
    # after our message settled.
    for _ in range(50):
        if len(node_smsc.of("receipt_acked")) >= 3:
            break
        await asyncio.sleep(0.1)
    assert [a["command_status"] for a in node_smsc.of("receipt_acked")] == [0, 0, 0]
    assert STATES[final.state] == "DELIVERED"
    assert list(final.smsc_message_ids) == [p["message_id"] for p in parts]
