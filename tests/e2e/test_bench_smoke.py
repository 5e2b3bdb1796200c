"""`make bench` keeps working: `python -m bench --smoke` (every measurement,
tiny loads, its own stacks on free ports) writes its result files with every
headline figure of issue 12's table (and the two kept from issue 9), the SMS
figures of issue 14 for SMPP 3.4 and CMPP 3.0, each with its target in the
table, and the configuration stamp. No timing is asserted: these figures
mean nothing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from devstack.stack import ROOT

HEADLINES = (
    "completed_queries_per_s",
    "db_round_trips_per_query",
    "db_round_trips_last_answer_to_sms",
    "service_cpu_ms_per_query",
    "service_cpu_vs_grpc_floor",
    "service_cpu_vs_paced_grpc_floor",
    "ferretdb_cpu_ms_per_round_trip",
    "completed_vs_bare_fanout",
    "fanout_overhead",
    "backlog_cost_ratio",
    "idle_db_ops_per_s",
    "isolation_ratio",
    "memory_mib",
    "sms_rate_vs_link_smpp",
    "sms_rate_vs_link_cmpp",
    "sms_cpu_vs_link_floor_smpp",
    "sms_cpu_vs_link_floor_cmpp",
    "sms_delivered_ratio_smpp",
    "sms_delivered_ratio_cmpp",
    "e2e_efficiency",
    "http_accept_ratio",
)
# Issue 12's targets, as `make bench` must report them.
TARGETS = {
    "db_round_trips_per_query": "<= 8",
    "db_round_trips_last_answer_to_sms": "<= 0",
    "service_cpu_vs_grpc_floor": "<= 3",
    "completed_vs_bare_fanout": ">= 0.2",
    "fanout_overhead": "<= 1.1",
    "backlog_cost_ratio": "<= 1.2",
    "idle_db_ops_per_s": "<= 2",
    "isolation_ratio": ">= 0.9",
    "memory_mib": "<= 1536",
    # Issue 14: every result SMS settled by its receipts, on either protocol.
    "sms_delivered_ratio_smpp": ">= 1",
    "sms_delivered_ratio_cmpp": ">= 1",
}
CONFIG = (
    "telemetry_exporter",
    "traces_sample_ratio",
    "internal_tls",
    "event_loop",
    "replicas",
    "notifier_max_per_second",
    "notifier_protocol",
)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_bench_smoke_writes_every_headline(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
    env["PYTHONUNBUFFERED"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    latest = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    dated = tmp_path / f"{latest['run']['date']}.json"
    assert json.loads(dated.read_text(encoding="utf-8")) == latest
    for key in HEADLINES:
        assert _number(latest[key]), f"{key} = {latest[key]!r}"
        assert key in latest["targets"]
    assert {k: latest["targets"][k]["target"] for k in TARGETS} == TARGETS
    assert latest["targets"]["e2e_efficiency"]["target"] is None
    assert latest["targets"]["http_accept_ratio"]["target"] is None
    for key in CONFIG:
        assert key in latest["config"], f"config.{key} missing: {latest['config']}"
    assert latest["config"]["telemetry_exporter"] and isinstance(latest["config"]["internal_tls"], bool)
    assert latest["config"]["event_loop"] in ("asyncio", "uvloop", "mixed")
    # The SMS figures came from each protocol's own run: the notifier really
    # spoke it, its result SMS reached the centre, the link alone's parts were
    # all accepted; and the stack went back to SMPP for what came after.
    assert latest["config"]["notifier_protocol"] == "smpp34"
    for protocol in ("smpp34", "cmpp30"):
        sms = latest["sms"][protocol]
        assert sms["protocol"] == protocol
        assert sms["through_stack"]["result_sms"] >= 1, sms
        spoken, other = ("smpp", "cmpp") if protocol == "smpp34" else ("cmpp", "smpp")
        receipts = sms["through_stack"]["receipts_over"]
        assert receipts[spoken] >= sms["through_stack"]["result_sms"] and receipts[other] == 0, sms
        assert sms["link_alone"]["protocol"] == protocol
        assert sms["link_alone"]["accepted_parts"] == sms["link_alone"]["parts"] > 0, sms

    table = (tmp_path / "latest.md").read_text(encoding="utf-8")
    for key in HEADLINES:
        assert f"`{key}`" in table
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # The headline ratios are what the run prints last.
    closing = done.stdout.strip().splitlines()[-len(HEADLINES) :]
    assert [line.split()[0] for line in closing] == list(HEADLINES)
