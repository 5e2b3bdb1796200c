"""Resident memory and CPU time of the stack's processes, read from /proc.

Each stack child is a process group leader (devstack's supervisor); its
descendants, if any, count with it. RSS is what the issue's memory target
means ("resident"); PSS (shared pages split between their users) is kept
beside it because 20 Python processes share their interpreter's pages.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _children_by_parent() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after its last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found.setdefault(ppid, []).append(int(entry.name))
    return found


def tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(children.get(p, []))
    return pids


def _status_kib(pid: int, field: str, file: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory(pids: dict[str, int]) -> dict:
    """Total and per-process RSS and PSS, MiB."""
    children = _children_by_parent()
    rss, pss = {}, {}
    for name, pid in pids.items():
        members = tree(pid, children)
        rss[name] = sum(_status_kib(p, "VmRSS") for p in members) / 1024
        pss[name] = sum(_status_kib(p, "Pss", "smaps_rollup") for p in members) / 1024
    return {
        "total_rss_mib": round(sum(rss.values()), 1),
        "total_pss_mib": round(sum(pss.values()), 1),
        "processes": len(pids),
        "rss_mib": {n: round(v, 1) for n, v in sorted(rss.items(), key=lambda kv: -kv[1])},
    }


def cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far per stack process (with its descendants)."""
    children = _children_by_parent()
    return {name: sum(cpu_seconds(p) for p in tree(pid, children)) for name, pid in pids.items()}


def event_loop(pid: int) -> str | None:
    """ "uvloop" when the process has uvloop's extension mapped, else
    "asyncio" (our services are all asyncio programs); None if unreadable."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    return "uvloop" if "/uvloop/" in maps else "asyncio"


def rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU milliseconds a second per process between two readings."""
    return {n: round((after[n] - before.get(n, 0.0)) * 1000 / seconds, 3) for n in after} if seconds > 0 else {}


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        n: round(after[n] - before.get(n, 0.0), 3) for n in sorted(after, key=lambda n: before.get(n, 0.0) - after[n])
    }


class PeakMemory:
    """Samples the stack's total RSS on a thread; keeps the largest sample."""

    def __init__(self, pids: dict[str, int], every: float = 0.5) -> None:
        self._pids = pids
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self.peak: dict | None = None
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = memory(self._pids)
            self.samples += 1
            if self.peak is None or sample["total_rss_mib"] > self.peak["total_rss_mib"]:
                self.peak = sample
            self._stop.wait(self._every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        # One last sample: the end of the load is often its largest.
        sample = memory(self._pids)
        if self.peak is None or sample["total_rss_mib"] > self.peak["total_rss_mib"]:
            self.peak = sample
