"""`make bench` keeps working: `python -m bench --smoke` (every measurement,
tiny loads, its own stacks on free ports) writes its result files with every
headline figure. No timing is asserted: these figures mean nothing."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from devstack.stack import ROOT

HEADLINES = (
    "e2e_efficiency",
    "completed_queries_per_s",
    "db_round_trips_per_query",
    "http_accept_ratio",
    "fanout_overhead",
    "isolation_ratio",
    "memory_mib",
)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_bench_smoke_writes_every_headline(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
    env["PYTHONUNBUFFERED"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    latest = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    dated = tmp_path / f"{latest['run']['date']}.json"
    assert json.loads(dated.read_text(encoding="utf-8")) == latest
    for key in HEADLINES:
        assert _number(latest[key]), f"{key} = {latest[key]!r}"
        assert key in latest["targets"]

    table = (tmp_path / "latest.md").read_text(encoding="utf-8")
    for key in HEADLINES:
        assert f"`{key}`" in table
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # The headline ratios are what the run prints last.
    closing = done.stdout.strip().splitlines()[-len(HEADLINES):]
    assert [line.split()[0] for line in closing] == list(HEADLINES)
