"""Fixtures shared by all rings: a real FerretDB on a free port with a fresh
data folder, started by PID and stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FERRETDB = ROOT / ".tools" / "bin" / "ferretdb"


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The MongoDB URI of a FerretDB started for this test session."""
    if not FERRETDB.exists():
        subprocess.run(["make", "ferretdb"], cwd=ROOT, check=True)
    data = tmp_path_factory.mktemp("ferretdb")
    proc = subprocess.Popen(
        [str(FERRETDB), "--listen-addr", "127.0.0.1:0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready "), f"FerretDB did not start: {line!r}"
        yield line.split()[1]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def mongodb_uri(ferretdb: str) -> str:
    """A URI naming a database of its own for this test."""
    return ferretdb.rstrip("/") + f"/t{uuid.uuid4().hex[:12]}"
