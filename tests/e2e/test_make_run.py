"""`make run`'s program (python -m devstack): it starts everything, says
where each part listens, and Ctrl-C leaves no process behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.stack import ROOT


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_everything(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
    env.update(YZTC_DEVSTACK_FREE_PORTS="1", YZTC_DEVSTACK_VAR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("yztc is running"):
                break
            assert time.monotonic() < deadline, "".join(output[-20:])
        else:
            raise AssertionError("devstack ended before it was running:\n" + "".join(output[-30:]))
        # The listing names every part of the stack.
        for _ in range(17):
            output.append(proc.stdout.readline())
        listing = "".join(output)
        for name in ["ferretdb", "simulators", "aggregator", "sms_notifier", "gateway",
                     "connector-tencent", "connector-meituan", "connector-cmcc", "connector-cbn"]:
            assert f"  {name} " in listing
        children = _children(proc.pid)
        # FerretDB, the simulators, 12 connectors, notifier, aggregator, gateway.
        assert len(children) == 17
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest[-2000:]
    assert "stopped." in rest
    assert not [pid for pid in children if _alive(pid)]
