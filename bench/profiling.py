"""Where the time goes (opt-in, `--profile`): py-spy records the stack's
Python processes while the end-to-end load runs, without pausing them
(--nonblocking), and each profile is summarised: the share of samples
waiting (in epoll, or a thread parked in C), and of the busy ones the
libraries on CPU (leaf frame's package: pymongo, grpc, opentelemetry,
stdlib asyncio, ...), the functions on CPU, and our own functions most
often on the stack (inclusive)."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

from bench import processes
from devstack.stack import ROOT

PROFILED = ("aggregator", "sms_notifier", "simulators", "connector-tencent")


class PySpy:
    def __init__(self, pids: dict[str, int], out: Path, rate: int = 49) -> None:
        self._pids = {n: pids[n] for n in PROFILED if n in pids}
        self._out = out
        self._rate = rate
        self._running: dict[str, subprocess.Popen] = {}
        self.summaries: dict[str, dict] = {}

    def __enter__(self) -> PySpy:
        spy = processes.tool("py-spy")
        if spy is None:
            self.summaries = {"error": "py-spy not installed (pip install py-spy==0.4.3 into .venv)"}
            return self
        self._out.mkdir(parents=True, exist_ok=True)
        for name, pid in self._pids.items():
            self._running[name] = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(self._rate),
                    "--nonblocking",
                    "--full-filenames",
                    "--format",
                    "raw",
                    "--output",
                    str(self._out / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._running.values():
            process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for name, process in self._running.items():
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                err = b"timed out"
            path = self._out / f"{name}.txt"
            if path.exists():
                self.summaries[name] = summarise(path)
            else:
                self.summaries[name] = {"error": err.decode(errors="replace")[-300:]}


# A leaf here means the thread waits: in epoll, or parked in C (gRPC's poller).
WAITING = {"EpollSelector.select", "select", "Thread.run", "Condition.wait", "Event.wait"}
OURS = ("aggregator", "gateway", "platform_connectors", "sms_notifier", "simulators", "yztc", "devstack")


def _split(frame: str) -> tuple[str, str]:
    """'name (/full/path/file.py:123)' -> (name, /full/path/file.py)."""
    name, _, where = frame.partition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


def _library(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    root = str(ROOT) + "/"
    if path.startswith(root):
        return path[len(root) :].split("/", 1)[0]
    if "/python3." in path:  # the standard library: .../lib/python3.11/<module>
        inside = path.split("/python3.", 1)[1].split("/", 1)
        return "stdlib " + (inside[1].split("/", 1)[0].removesuffix(".py") if len(inside) > 1 else "?")
    return "python" if path.startswith("<") else path


def _short(name: str, path: str) -> str:
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


def summarise(path: Path, top: int = 12) -> dict:
    leaf_fn: Counter[str] = Counter()
    leaf_lib: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = waiting = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_split(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        name, where = frames[-1]
        if name in WAITING:
            waiting += n
            continue
        leaf_fn[_short(name, where)] += n
        leaf_lib[_library(where)] += n
        # Entry points (__main__.py) are on every stack: they say nothing.
        for function in {
            _short(nm, wh) for nm, wh in frames if _library(wh) in OURS and not wh.endswith("__main__.py")
        }:
            ours[function] += n
    busy = total - waiting

    def share(counts: Counter[str]) -> list[list]:
        return [[f, round(100 * n / busy, 1)] for f, n in counts.most_common(top)] if busy else []

    return {
        "samples": total,
        "waiting_percent": round(100 * waiting / total, 1) if total else None,
        "busy_by_library_percent": share(leaf_lib),
        "busy_self_percent": share(leaf_fn),
        "busy_ours_inclusive_percent": share(ours),
        "file": path.name,
    }
