"""The bench's own helper processes: bare servers started and stopped by
PID, load clients run to completion, free ports, external tools."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.stack import ROOT
from devstack.supervisor import port_open


@contextmanager
def servers(commands: list[tuple[list[str], int]], log_dir: Path, timeout: float = 60.0) -> Iterator[list[int]]:
    """Starts `python -m <argv>` for each (argv, port), waits until every port
    answers, yields their PIDs, and stops them (by PID) on the way out."""
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []
    try:
        for argv, _port in commands:
            log = open(log_dir / f"{argv[1]}-{argv[2]}.log", "ab")
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", *argv],
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        deadline = time.monotonic() + timeout
        for process, (argv, port) in zip(started, commands, strict=False):
            while not port_open(port):
                if process.poll() is not None:
                    raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}; see {log_dir}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(argv)} not listening after {timeout} s")
                time.sleep(0.05)
        yield [p.pid for p in started]
    finally:
        for process in started:
            stop(process)


def stop(process: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process's group, SIGKILL it if it outlives the grace."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_load(job: dict, timeout: float = 600.0) -> dict:
    """Runs one load-client job in its own process (bench/load_client.py)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.load_client"],
        cwd=ROOT,
        input=json.dumps(job).encode(),
        capture_output=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load client failed ({job['kind']}): {done.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(done.stdout)


async def run_load_async(job: dict, timeout: float = 600.0) -> dict:
    """As run_load, without blocking the orchestrator's event loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load_client",
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(json.dumps(job).encode()), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"load client failed ({job['kind']}): {err.decode(errors='replace')[-2000:]}")
    return json.loads(out)


def tool(name: str) -> str | None:
    """An external tool: the checkout's .tools/bin or .venv/bin first, then PATH."""
    for folder in (ROOT / ".tools" / "bin", Path(sys.executable).parent):
        if (folder / name).is_file():
            return str(folder / name)
    return shutil.which(name)
