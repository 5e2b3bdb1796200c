"""The run's results: the headline figures (top-level keys: ratios to a
ceiling of the same run, counts, CPU per query; issue 12's table), the
configuration stamp (`config`), the detail behind them, a markdown table
with each target and whether it was met, a PNG of latency against offered
load, and the headlines printed last."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display
from matplotlib import pyplot as plt  # noqa: E402

# Issue 14: the SMS path over each protocol (sms_protocols.py), the
# notifier's own link alone being the ceiling; a headline per figure and
# protocol, `sms_<figure>_<short name>`.
SMS_PROTOCOLS = (("smpp34", "smpp", "SMPP 3.4"), ("cmpp30", "cmpp", "CMPP 3.0"))
SMS_FIGURES = {
    "rate_vs_link": (None, None, "result SMS/s through the stack / messages/s over the notifier's link alone"),
    "cpu_vs_link_floor": (None, None, "notifier CPU per result SMS, idle taken off / the link alone's CPU per message"),
    "delivered_ratio": (">=", 1, "result SMS whose query shows DELIVERED / result SMS sent"),
}
# key: (comparison, target, what it is); issue 12's table, then what is
# kept from issue 9 (e2e_efficiency and http_accept_ratio without targets:
# they measured FerretDB and the bare aiohttp hello, not our services).
TARGETS = {
    "completed_queries_per_s": (None, None, "accepted -> result SMS at the SMS centre, sustained"),
    "db_round_trips_per_query": (
        "<=",
        8,
        "aggregator + notifier, SubmitQuery to result SMS (closed loop; code not included)",
    ),
    "db_round_trips_last_answer_to_sms": (
        "<=",
        0,
        "aggregator + notifier, last company answer to the result SMS's submit_sm, net of idle",
    ),
    "service_cpu_ms_per_query": (
        None,
        None,
        "aggregator + notifier + connectors CPU ms per completed query, idle taken off (gRPC load: no gateway)",
    ),
    "service_cpu_vs_grpc_floor": ("<=", 3, "service CPU / (gRPC calls per query x bare echo CPU per call, same TLS)"),
    "service_cpu_vs_paced_grpc_floor": (
        None,
        None,
        "the same, against the echo paced at about a connector's rate in the run (informational)",
    ),
    "ferretdb_cpu_ms_per_round_trip": (None, None, "FerretDB CPU / requests it served (a stand-in's cost)"),
    "completed_vs_bare_fanout": (">=", 0.2, "completed queries/s / bare 8-way fan-outs/s"),
    "fanout_overhead": ("<=", 1.10, "accept -> result SMS (p50) / slowest company latency (200 ms)"),
    "backlog_cost_ratio": (
        "<=",
        1.2,
        "stack CPU per completed query with the backlog open (one company down) / with none",
    ),
    "idle_db_ops_per_s": ("<=", 2, "database work commands a second at rest, per replica (the busiest service)"),
    "isolation_ratio": (">=", 0.9, "others-answered throughput with one company hanging / without"),
    "memory_mib": ("<=", 1536, "resident memory of the whole stack under load, MiB"),
    **{
        f"sms_{key}_{short}": (op, target, f"{what}, {name}")
        for key, (op, target, what) in SMS_FIGURES.items()
        for _, short, name in SMS_PROTOCOLS
    },
    "e2e_efficiency": (
        None,
        None,
        "completed queries/s x gRPC calls per query / bare echo RPC/s (no target since issue 12)",
    ),
    "http_accept_ratio": (
        None,
        None,
        "POST /api/v1/queries accepted/s at peak / bare aiohttp requests/s (no target since issue 12)",
    ),
}
HEADLINES = tuple(TARGETS)
# Our services' processes (stack child names); the gateway counts only when
# the load came over HTTP, and the end-to-end load comes over gRPC.
SERVICES = ("aggregator", "sms_notifier", "connector-")


def _pick(data: object, *path: str) -> float | None:
    """A number deep in the results, or None where a measurement failed."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data if _number(data) else None


def _ratio(top: float | None, bottom: float | None, digits: int) -> float | None:
    return round(top / bottom, digits) if top is not None and bottom else None


def service_cpu(results: dict) -> dict:
    """Our services' CPU per completed query in the end-to-end run, the idle
    rate over the same span taken off, and the bare gRPC floor for the same
    number of calls (mutual TLS echo when internal links use it)."""
    e2e = results.get("end_to_end") or {}
    used, done = e2e.get("cpu_seconds"), e2e.get("completed")
    span = _pick(e2e, "cpu_window_seconds")
    idle = _pick_dict(results, "idle_cpu", "cpu_ms_per_s")
    if not isinstance(used, dict) or not done or span is None:
        return {"error": "no end-to-end CPU figures"}
    per_process = {}
    for name, seconds in used.items():
        if name.startswith(SERVICES):
            at_rest = idle.get(name, 0.0) * span / 1000
            per_process[name] = round(max(0.0, seconds - at_rest) * 1000 / done, 4)
    total = sum(per_process.values())
    tls = bool((results.get("config") or {}).get("internal_tls"))
    echo = _pick(results, "ceilings", "grpc_echo_mtls" if tls else "grpc_echo", "cpu_ms_per_call")
    calls = _pick(e2e, "grpc_calls_per_query")
    floor = calls * echo if calls is not None and echo is not None else None
    paced = _pick(results, "ceilings", "grpc_echo_mtls_paced", "cpu_ms_per_call") if tls else None
    paced_floor = calls * paced if calls is not None and paced is not None else None
    return {
        "how": "per-process CPU (utime + stime, /proc) over the end-to-end load, less each process's CPU at rest "
        "over the same span, per completed query",
        "ms_per_query": round(total, 3),
        "ms_per_query_by_process": per_process,
        "idle_taken_off_ms_per_query": round(sum(idle.get(n, 0.0) for n in per_process) * span / done, 4),
        "grpc_calls_per_query": calls,
        "echo": "mutual TLS" if tls else "plaintext",
        "echo_cpu_ms_per_call": echo,
        "grpc_floor_ms_per_query": round(floor, 3) if floor is not None else None,
        "vs_grpc_floor": _ratio(total, floor, 2),
        "paced_echo_cpu_ms_per_call": paced,
        "paced_grpc_floor_ms_per_query": round(paced_floor, 3) if paced_floor is not None else None,
        "vs_paced_grpc_floor": _ratio(total, paced_floor, 2),
    }


def _pick_dict(data: object, *path: str) -> dict:
    for key in path:
        if not isinstance(data, dict):
            return {}
        data = data.get(key)
    return data if isinstance(data, dict) else {}


def headlines(results: dict) -> dict:
    completed = _pick(results, "end_to_end", "completed_per_s")
    calls = _pick(results, "end_to_end", "grpc_calls_per_query")
    echo = _pick(results, "ceilings", "grpc_echo", "per_s")
    per_replica = _pick_dict(results, "db_round_trips", "idle", "per_s_per_replica")
    idle = [v for v in per_replica.values() if _number(v)]
    return {
        "completed_queries_per_s": completed,
        "db_round_trips_per_query": _pick(results, "db_round_trips", "per_query"),
        "db_round_trips_last_answer_to_sms": _pick(results, "db_round_trips", "last_answer_to_sms", "gap"),
        "service_cpu_ms_per_query": _pick(results, "service_cpu", "ms_per_query"),
        "service_cpu_vs_grpc_floor": _pick(results, "service_cpu", "vs_grpc_floor"),
        "service_cpu_vs_paced_grpc_floor": _pick(results, "service_cpu", "vs_paced_grpc_floor"),
        "ferretdb_cpu_ms_per_round_trip": _pick(results, "db_round_trips", "ferretdb", "cpu_ms_per_round_trip"),
        "completed_vs_bare_fanout": _ratio(completed, _pick(results, "ceilings", "grpc_fanout", "per_s"), 3),
        "fanout_overhead": _pick(results, "fanout", "overhead_p50"),
        "backlog_cost_ratio": _pick(results, "backlog", "cost_ratio"),
        "idle_db_ops_per_s": max(idle) if idle else None,
        "isolation_ratio": _pick(results, "isolation", "throughput_ratio"),
        "memory_mib": _pick(results, "memory", "under_load", "total_rss_mib"),
        **{
            f"sms_{key}_{short}": _pick(results, "sms", protocol, key)
            for key in SMS_FIGURES
            for protocol, short, _ in SMS_PROTOCOLS
        },
        "e2e_efficiency": _ratio(completed * calls if completed is not None and calls is not None else None, echo, 3),
        "http_accept_ratio": _ratio(
            _pick(results, "accept", "http", "peak", "accepted_per_s"),
            _pick(results, "ceilings", "http_json", "per_s"),
            4,
        ),
    }


def verdicts(values: dict) -> dict:
    found = {}
    for key, (op, target, what) in TARGETS.items():
        value = values.get(key)
        met = None
        if op and _number(value):
            met = value >= target if op == ">=" else value <= target
        found[key] = {"target": f"{op} {target}" if op else None, "met": met, "what": what}
    return found


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean(value: object) -> object:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write(results: dict, out: Path, stamp: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = _clean(results)
    dated = out / f"{stamp}.json"
    dated.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    plot = out / f"{stamp}.png"
    _plot(results, plot)
    table = out / f"{stamp}.md"
    table.write_text(markdown(results, "latest.png"), encoding="utf-8")
    files = {"json": out / "latest.json", "markdown": out / "latest.md", "plot": out / "latest.png"}
    shutil.copyfile(dated, files["json"])
    shutil.copyfile(table, files["markdown"])
    shutil.copyfile(plot, files["plot"])
    return {**files, "dated_json": dated}


def _fmt(value: object, digits: int = 3) -> str:
    if not _number(value):
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown(results: dict, plot_name: str) -> str:
    run = results["run"]
    lines = [
        f"# yztc bench, {run['date']} ({run['profile']} run, {run['cores']} cores)",
        "",
        "Every headline is a ratio to a ceiling measured in the same run, a count, or CPU per query; "
        "the machine is shared, so absolute figures drift between runs "
        f"(load average {run.get('load_average_at_start')} at the start, {run.get('load_average_at_end')} at the end).",
        "",
        "| figure | value | target | met | what |",
        "|---|---|---|---|---|",
    ]
    for key, verdict in results["targets"].items():
        met = {True: "yes", False: "**no**", None: ""}[verdict["met"]]
        lines.append(f"| `{key}` | {_fmt(results.get(key))} | {verdict['target'] or ''} | {met} | {verdict['what']} |")
    lines += ["", _config_md(results.get("config"))]
    for title, section in (
        ("Ceilings", _ceilings_md),
        ("Accept (verification codes prepared beforehand)", _accept_md),
        ("End to end", _e2e_md),
        ("Our services' CPU against the bare gRPC floor", _service_cpu_md),
        ("Database round trips", _db_md),
        ("Fan-out overhead", _fanout_md),
        ("SMS over each protocol", _sms_md),
        ("Backlog cost", _backlog_md),
        ("Isolation", _isolation_md),
        ("Memory", _memory_md),
    ):
        lines += ["", f"## {title}", ""]
        try:
            lines += section(results, plot_name)
        except (KeyError, TypeError, AttributeError):
            errors = [v["error"] for v in results.values() if isinstance(v, dict) and "error" in v]
            lines.append(f"Not measured in this run{': ' + '; '.join(errors) if errors else ''}.")
    lines += [
        "",
        "## Limits raised for the run",
        "",
        *[f"- `{k}={v}`" for k, v in results["limits_raised"].items()],
        "",
    ]
    return "\n".join(lines)


def _config_md(config: object) -> str:
    if not isinstance(config, dict):
        return "Configuration: not read in this run."
    replicas = ", ".join(f"{k} {v}" for k, v in (config.get("replicas") or {}).items())
    return (
        f"Configuration: traces exporter `{config.get('telemetry_exporter')}`, head sampling "
        f"{config.get('traces_sample_ratio')} ({config.get('traces_sample_ratio_from')}); internal mutual TLS "
        f"{'on' if config.get('internal_tls') else 'off'}; event loop {config.get('event_loop')}; replicas: {replicas}; "
        f"notifier pace {config.get('notifier_max_per_second')} parts/s; database {config.get('mongodb')}; "
        f"round trips counted on {config.get('database_round_trips_on')}."
    )


def _ceilings_md(results: dict, _plot: str) -> list[str]:
    c = results["ceilings"]
    rows = [
        "| bare | per s | p50 ms | p99 ms | CPU ms per call (client + server) |",
        "|---|---|---|---|---|",
        f"| grpc.aio unary echo, plaintext (RPC) | {_fmt(c['grpc_echo']['per_s'])} | {_fmt(c['grpc_echo']['p50_ms'])} | "
        f"{_fmt(c['grpc_echo']['p99_ms'])} | {_fmt(c['grpc_echo'].get('cpu_ms_per_call'))} |",
    ]
    if isinstance(c.get("grpc_echo_mtls"), dict):
        m = c["grpc_echo_mtls"]
        rows.append(
            f"| grpc.aio unary echo, mutual TLS (RPC) | {_fmt(m['per_s'])} | {_fmt(m['p50_ms'])} | "
            f"{_fmt(m['p99_ms'])} | {_fmt(m.get('cpu_ms_per_call'))} |"
        )
    if isinstance(c.get("grpc_echo_mtls_paced"), dict):
        m = c["grpc_echo_mtls_paced"]
        rows.append(
            f"| the same, paced (RPC; offered, not a ceiling) | {_fmt(m['per_s'])} | {_fmt(m['p50_ms'])} | "
            f"{_fmt(m['p99_ms'])} | {_fmt(m.get('cpu_ms_per_call'))} |"
        )
    return [
        *rows,
        f"| 8-way fan-out echo (fan-outs) | {_fmt(c['grpc_fanout']['per_s'])} | {_fmt(c['grpc_fanout']['p50_ms'])} | {_fmt(c['grpc_fanout']['p99_ms'])} | |",
        f"| aiohttp JSON handler ({c['http_json']['tool']}) | {_fmt(c['http_json']['per_s'])} | {_fmt(c['http_json']['p50_ms'])} | {_fmt(c['http_json']['p99_ms'])} | |",
    ]


def _service_cpu_md(results: dict, _plot: str) -> list[str]:
    s = results["service_cpu"]
    groups = _cpu_groups({n: ms / 1000 for n, ms in s["ms_per_query_by_process"].items()})
    return [
        f"**{_fmt(s['ms_per_query'])} ms** of CPU per completed query in the end-to-end run ({s['how']}; "
        f"{_fmt(s['idle_taken_off_ms_per_query'])} ms a query taken off for idle). Floor: "
        f"{_fmt(s['grpc_calls_per_query'])} gRPC calls x {_fmt(s['echo_cpu_ms_per_call'])} ms ({s['echo']} echo, "
        f"client + server) = {_fmt(s['grpc_floor_ms_per_query'])} ms: **{_fmt(s['vs_grpc_floor'])}x** the floor."
        + (
            f" The echo paced at about a connector's rate in the run costs {_fmt(s['paced_echo_cpu_ms_per_call'])} ms "
            f"a call: {_fmt(s['paced_grpc_floor_ms_per_query'])} ms for the same calls, {_fmt(s['vs_paced_grpc_floor'])}x "
            "(informational: a process that mostly waits pays a wake-up per call)."
            if s.get("vs_paced_grpc_floor") is not None
            else ""
        ),
        "",
        "| process | CPU ms / query |",
        "|---|---|",
        *[f"| {name} | {ms:.2f} |" for name, ms in groups],
    ]


def _accept_md(results: dict, plot_name: str) -> list[str]:
    lines = ["| API | offered/s | accepted | accepted/s | p50 ms | p99 ms | refused |", "|---|---|---|---|---|---|---|"]
    for api, label in (("grpc", "SubmitQuery (gRPC)"), ("http", "POST /api/v1/queries")):
        series = results["accept"][api]
        for level in series["levels"]:
            lines.append(
                f"| {label} | {_fmt(level['offered_per_s'])} | {level['accepted']}/{level['sent']} | "
                f"{_fmt(level['accepted_per_s'])} | {_fmt(level['p50_ms'])} | {_fmt(level['p99_ms'])} | {_refused(level)} |"
            )
        peak = series["peak"]
        lines.append(
            f"| {label} | peak, {peak['concurrency']} in flight ({peak['tool'].split()[0]}) | {peak['accepted']}/{peak['sent']} | "
            f"{_fmt(peak['accepted_per_s'])} | {_fmt(peak['p50_ms'])} | {_fmt(peak['p99_ms'])} | {_refused(peak)} |"
        )
    return [*lines, "", f"![latency against offered load]({plot_name})"]


def _e2e_md(results: dict, _plot: str) -> list[str]:
    e = results["end_to_end"]
    a2r = e["accept_to_result"]
    lines = [
        f"{e['completed']} of {e['queries']} queries completed in {e['seconds']} s: "
        f"**{_fmt(e['completed_per_s'])} queries/s** ({_fmt(e['completed_per_s_10_90'])}/s between the 10th and 90th "
        f"percentile of completions); accept to result SMS p50 {_fmt(a2r['p50_ms'])} ms, p99 {_fmt(a2r['p99_ms'])} ms; "
        f"{_fmt(e['grpc_calls_per_query'])} gRPC calls per query.",
        "",
        "CPU time per completed query, by process:",
        "",
        "| process | CPU ms / query |",
        "|---|---|",
    ]
    for name, ms in _cpu_groups(e["cpu_seconds_per_query"]):
        lines.append(f"| {name} | {ms:.2f} |")
    profiles = {n: p for n, p in (e.get("profiles") or {}).items() if isinstance(p, dict) and p.get("samples")}
    if profiles:
        lines += [
            "",
            "py-spy during the load (busy samples; waiting = in epoll or parked in C):",
            "",
            "| process | waiting | on CPU, by library | our code on the stack |",
            "|---|---|---|---|",
        ]
        for name, found in profiles.items():
            libs = ", ".join(f"{f} {p}%" for f, p in found["busy_by_library_percent"][:5])
            ours = ", ".join(f"{f} {p}%" for f, p in found["busy_ours_inclusive_percent"][:4])
            lines.append(f"| {name} | {found['waiting_percent']}% | {libs} | {ours} |")
    return lines


def _db_md(results: dict, _plot: str) -> list[str]:
    d = results["db_round_trips"]
    ferretdb_ms = _pick(results, "end_to_end", "cpu_seconds_per_query", "ferretdb")
    per_trip = (
        f" In the end-to-end run FerretDB spent {_fmt(ferretdb_ms * 1000 / d['per_query'])} ms of CPU per counted round trip."
        if ferretdb_ms is not None and _number(d.get("per_query"))
        else ""
    )
    idle = d.get("idle") or {}
    ferret = d.get("ferretdb") or {}
    lines = [
        f"**{_fmt(d['per_query'])}** per query (aggregator + notifier; {d['how']}); "
        f"by service: {', '.join(f'{k} {v}' for k, v in d['per_query_by_app'].items())}. "
        f"Getting a verification code: {_fmt(d['per_code'])} more per code.",
        "",
        f"At rest ({_fmt(idle.get('seconds'))} s): {_fmt(idle.get('per_s'))} work commands a second; per replica "
        f"{', '.join(f'{k} {v}' for k, v in (idle.get('per_s_per_replica') or {}).items())}; "
        f"driver plumbing (heartbeats, pings) {_fmt(idle.get('plumbing_per_s'))} a second besides.",
        "",
        f"FerretDB: **{_fmt(ferret.get('cpu_ms_per_round_trip'))} ms** of CPU per request "
        f"({ferret.get('how', '')}; {ferret.get('requests_served')} requests, {_fmt(ferret.get('cpu_seconds'))} s).{per_trip}",
        "",
        "| service | command | per query |",
        "|---|---|---|",
    ]
    for app, commands in d["per_query_by_command"].items():
        for cmd, n in commands.items():
            lines.append(f"| {app} | {cmd} | {n} |")
    seq = d.get("last_answer_to_sms")
    if isinstance(seq, dict):
        a2s = seq["last_answer_to_sms"]
        lines += [
            "",
            "### Between the last company answer and the result SMS",
            "",
            f"**{_fmt(seq['gap'])}** round trips net of idle ({_fmt(seq['gap_raw'])} counted, idle "
            f"{_fmt(seq['idle_per_s'])}/s), {seq['timed']} of {seq['queries']} queries timed; last company answer to "
            f"the result SMS's first submit_sm p50 {_fmt(a2s['p50_ms'])} ms, max {_fmt(a2s['max_ms'])} ms. "
            f"One at a time, the whole query took {_fmt(seq['per_query'])} round trips net of idle "
            f"({_fmt(seq['per_query_raw'])} counted); accept p50 {_fmt(seq['accept']['p50_ms'])} ms. Method: {seq['how']}.",
            "",
            "| service: command | per query, in the gap |",
            "|---|---|",
            *[f"| {cmd} | {n} |" for cmd, n in seq["gap_by_command"].items()],
        ]
    return lines


def _sms_md(results: dict, _plot: str) -> list[str]:
    s = results["sms"]
    lines = [
        f"{s['how']}.",
        "",
        "| protocol | result SMS (parts) | through the stack /s | link alone msg/s | ratio "
        "| notifier CPU ms / SMS | link alone CPU ms / msg | ratio | DELIVERED | states |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol, _, name in SMS_PROTOCOLS:
        p = s[protocol]
        t, link = p["through_stack"], p["link_alone"]
        states = ", ".join(f"{k} {v}" for k, v in t["states"].items())
        lines.append(
            f"| {name} | {t['result_sms']}/{t['queries']} ({t['parts_per_sms']}) | {_fmt(t['result_sms_per_s'])} | "
            f"{_fmt(link['messages_per_s'])} | **{_fmt(p['rate_vs_link'])}** | {_fmt(t['notifier_cpu_ms_per_sms'])} | "
            f"{_fmt(link['cpu_ms_per_message'])} | **{_fmt(p['cpu_vs_link_floor'])}** | "
            f"**{_fmt(p['delivered_ratio'])}** | {states} |"
        )
    link = s["smpp34"]["link_alone"]
    lines += [
        "",
        f"The link alone sent {link['messages']} of the result texts ({link['parts']} parts) on each protocol, "
        "and waited for their receipts. Through the stack the rate is the whole pipeline's (queries closed "
        "loop), so that ratio says how much of the link's rate the stack reaches, not where the notifier stops.",
    ]
    return lines


def _backlog_md(results: dict, _plot: str) -> list[str]:
    b = results["backlog"]
    none, loaded = b["no_backlog"], b["with_backlog"]
    rest = b.get("idle_with_backlog") or {}
    lines = [
        f"{b['open_queries']} queries left open by {b['company_down']} being down (made in {_fmt(b['backlog_made_seconds'])} s; "
        f"its retries put hours away for the run: `{json.dumps(b['policy_for_the_run'])}`; "
        f"{b['backlog_retried']} of them retried during the measurement). {none['completed']} queries closed loop each way:",
        "",
        "| condition | completed | s | stack CPU ms / query | services CPU ms / query | DB round trips / query |",
        "|---|---|---|---|---|---|",
    ]
    for c in (none, loaded):
        lines.append(
            f"| {c['condition']} | {c['completed']}/{c['queries']} | {_fmt(c['seconds'])} | "
            f"{_fmt(c['cpu_ms_per_query'])} | {_fmt(c['services_cpu_ms_per_query'])} | "
            f"{_fmt(c.get('db_round_trips_per_query'))} |"
        )
    lines += [
        "",
        f"Ratio **{_fmt(b['cost_ratio'])}** (services alone {_fmt(b['services_cost_ratio'])})"
        + (
            f"; at rest with the backlog open: {_fmt(rest.get('per_s'))} database work commands a second."
            if rest
            else "."
        ),
    ]
    return lines


def _fanout_md(results: dict, _plot: str) -> list[str]:
    f = results["fanout"]
    return [
        f"Companies at {', '.join(f'{k} {v}' for k, v in f['company_latency_ms'].items())} ms; "
        f"{f['completed']} queries at {_fmt(f['offered_per_s'])}/s: accept to result SMS p50 "
        f"{_fmt(f['accept_to_result']['p50_ms'])} ms, p90 {_fmt(f['accept_to_result']['p90_ms'])} ms: "
        f"{_fmt(f['overhead_p50'])}x (p90 {_fmt(f['overhead_p90'])}x) the slowest company."
    ]


def _isolation_md(results: dict, _plot: str) -> list[str]:
    i = results["isolation"]
    bound = (
        " (an upper bound: the run's last queries had not all been answered in time)"
        if i["hanging"].get("timed_out")
        else ""
    )
    return [
        f"{i['hanging_company']} holding every request {i['hang_ms'] / 1000:.0f} s: "
        f"others-answered throughput {_fmt(i['hanging']['others_answered_per_s'])}/s{bound} against "
        f"{_fmt(i['baseline']['others_answered_per_s'])}/s without (**{_fmt(i['throughput_ratio'])}**); "
        f"the other seven's answer latency p50 {_fmt(i['hanging']['probe_latency']['p50_ms'])} ms against "
        f"{_fmt(i['baseline']['probe_latency']['p50_ms'])} ms ({_fmt(i['latency_ratio_p50'])}x)."
    ]


def _memory_md(results: dict, _plot: str) -> list[str]:
    m = results["memory"]
    rest, load = m["at_rest"], m["under_load"]
    top = ", ".join(f"{n} {v}" for n, v in list(load["rss_mib"].items())[:4])
    return [
        f"All {rest['processes']} stack processes: {_fmt(rest['total_rss_mib'])} MiB resident at rest, "
        f"**{_fmt(load['total_rss_mib'])} MiB** at the peak of the end-to-end load "
        f"(PSS {_fmt(rest['total_pss_mib'])} / {_fmt(load['total_pss_mib'])} MiB); largest: {top} MiB."
    ]


def _refused(level: dict) -> str:
    refused = level.get("refused")
    if isinstance(refused, dict):
        return ", ".join(f"{k} {v}" for k, v in refused.items()) or "0"
    return str(refused or 0)


def _cpu_groups(per_query: dict[str, float]) -> list[tuple[str, float]]:
    groups: dict[str, float] = {}
    for name, seconds in per_query.items():
        key = "connectors (12)" if name.startswith("connector-") else name
        groups[key] = groups.get(key, 0.0) + seconds * 1000
    ordered = sorted(groups.items(), key=lambda kv: -kv[1])
    return [*ordered, ("all", sum(groups.values()))]


def _plot(results: dict, path: Path) -> None:
    """Latency (p50, p99) and accepted/s against offered load, both APIs;
    the closed-loop peaks as stars at their accepted rate."""
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4.6), dpi=110)
    styles = {"grpc": ("SubmitQuery (gRPC)", "tab:blue"), "http": ("POST /api/v1/queries", "tab:orange")}
    offered: set[float] = set()
    for api, (label, colour) in styles.items():
        series = (results.get("accept") or {}).get(api)
        if not series:
            continue
        loads = [lv["offered_per_s"] for lv in series["levels"]]
        offered.update(loads)
        lat.plot(loads, [lv["p50_ms"] for lv in series["levels"]], "-o", color=colour, label=f"{label} p50")
        lat.plot(loads, [lv["p99_ms"] for lv in series["levels"]], "--s", color=colour, label=f"{label} p99")
        thr.plot(loads, [lv["accepted_per_s"] for lv in series["levels"]], "-o", color=colour, label=label)
        peak = series["peak"]
        if _number(peak.get("accepted_per_s")):
            lat.plot(
                [peak["accepted_per_s"]],
                [peak["p50_ms"]],
                "*",
                color=colour,
                markersize=12,
                label=f"{label} closed-loop peak p50",
            )
            thr.axhline(peak["accepted_per_s"], color=colour, linestyle=":", label=f"{label} closed-loop peak")
    loads = sorted(offered)
    thr.plot(loads, loads, color="grey", linewidth=0.8, label="accepted = offered")
    for ax in (lat, thr):
        ax.set_xscale("log")
        ax.set_xlabel("offered load (queries/s)")
        ax.set_xticks(loads)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # nothing to label when accept was not measured
            ax.legend(fontsize=7)
    lat.set_yscale("log")
    lat.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    lat.set_ylabel("accept latency (ms), from when each query was due")
    thr.set_ylabel("accepted queries/s")
    run = results["run"]
    fig.suptitle(f"yztc accept: latency and throughput against offered load ({run['date']}, {run['profile']} run)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_headlines(values: dict, targets: dict) -> None:
    print("\nheadlines (ratios to this run's ceilings, counts, CPU):")
    for key in HEADLINES:
        verdict = targets[key]
        mark = {True: "met", False: "MISSED", None: ""}[verdict["met"]]
        target = verdict["target"] or ""
        print(f"  {key:<34} {_fmt(values.get(key), 4):>10}  {target:<10} {mark}")
