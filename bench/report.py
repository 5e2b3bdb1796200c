"""The run's results: the headline figures (top-level keys, each a ratio to a
ceiling of the same run, or a count), the detail behind them, a markdown
table, a PNG of latency against offered load, and the headlines printed
last."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display
from matplotlib import pyplot as plt  # noqa: E402

# key: (comparison, target, what it is)
TARGETS = {
    "e2e_efficiency": (">=", 0.5, "completed queries/s x gRPC calls per query / bare echo RPC/s"),
    "completed_queries_per_s": (None, None, "accepted -> result SMS at the SMS centre, sustained"),
    "db_round_trips_per_query": ("<=", 10, "aggregator + notifier, from SubmitQuery to the result SMS"),
    "http_accept_ratio": (">=", 0.3, "POST /api/v1/queries accepted/s at peak / bare aiohttp requests/s"),
    "fanout_overhead": ("<=", 1.15, "accept -> result SMS (p50) / slowest company latency (200 ms)"),
    "isolation_ratio": (">=", 0.9, "others-answered throughput with one company hanging / without"),
    "memory_mib": ("<=", 1536, "resident memory of the whole stack under load, MiB"),
}
HEADLINES = tuple(TARGETS)


def _pick(data: object, *path: str) -> float | None:
    """A number deep in the results, or None where a measurement failed."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data if _number(data) else None


def _ratio(top: float | None, bottom: float | None, digits: int) -> float | None:
    return round(top / bottom, digits) if top is not None and bottom else None


def headlines(results: dict) -> dict:
    completed = _pick(results, "end_to_end", "completed_per_s")
    calls = _pick(results, "end_to_end", "grpc_calls_per_query")
    echo = _pick(results, "ceilings", "grpc_echo", "per_s")
    return {
        "e2e_efficiency": _ratio(completed * calls if completed is not None and calls is not None else None, echo, 3),
        "completed_queries_per_s": completed,
        "db_round_trips_per_query": _pick(results, "db_round_trips", "per_query"),
        "http_accept_ratio": _ratio(
            _pick(results, "accept", "http", "peak", "accepted_per_s"), _pick(results, "ceilings", "http_json", "per_s"), 4
        ),
        "fanout_overhead": _pick(results, "fanout", "overhead_p50"),
        "isolation_ratio": _pick(results, "isolation", "throughput_ratio"),
        "memory_mib": _pick(results, "memory", "under_load", "total_rss_mib"),
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
        "Every headline is a ratio to a ceiling measured in the same run (or a count); "
        "the machine is shared, so absolute figures drift between runs "
        f"(load average {run.get('load_average_at_start')} at the start, {run.get('load_average_at_end')} at the end).",
        "",
        "| figure | value | target | met | what |",
        "|---|---|---|---|---|",
    ]
    for key, verdict in results["targets"].items():
        met = {True: "yes", False: "**no**", None: ""}[verdict["met"]]
        lines.append(f"| `{key}` | {_fmt(results.get(key))} | {verdict['target'] or ''} | {met} | {verdict['what']} |")
    for title, section in (
        ("Ceilings", _ceilings_md), ("Accept (verification codes prepared beforehand)", _accept_md),
        ("End to end", _e2e_md), ("Database round trips per query", _db_md), ("Fan-out overhead", _fanout_md),
        ("Isolation", _isolation_md), ("Memory", _memory_md),
    ):
        lines += ["", f"## {title}", ""]
        try:
            lines += section(results, plot_name)
        except (KeyError, TypeError, AttributeError):
            errors = [v["error"] for v in results.values() if isinstance(v, dict) and "error" in v]
            lines.append(f"Not measured in this run{': ' + '; '.join(errors) if errors else ''}.")
    lines += ["", "## Limits raised for the run", "", *[f"- `{k}={v}`" for k, v in results["limits_raised"].items()], ""]
    return "\n".join(lines)


def _ceilings_md(results: dict, _plot: str) -> list[str]:
    c = results["ceilings"]
    return [
        "| bare | per s | p50 ms | p99 ms |", "|---|---|---|---|",
        f"| grpc.aio unary echo (RPC) | {_fmt(c['grpc_echo']['per_s'])} | {_fmt(c['grpc_echo']['p50_ms'])} | {_fmt(c['grpc_echo']['p99_ms'])} |",
        f"| 8-way fan-out echo (fan-outs) | {_fmt(c['grpc_fanout']['per_s'])} | {_fmt(c['grpc_fanout']['p50_ms'])} | {_fmt(c['grpc_fanout']['p99_ms'])} |",
        f"| aiohttp JSON handler ({c['http_json']['tool']}) | {_fmt(c['http_json']['per_s'])} | {_fmt(c['http_json']['p50_ms'])} | {_fmt(c['http_json']['p99_ms'])} |",
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
        "", "CPU time per completed query, by process:", "",
        "| process | CPU ms / query |", "|---|---|",
    ]
    for name, ms in _cpu_groups(e["cpu_seconds_per_query"]):
        lines.append(f"| {name} | {ms:.2f} |")
    profiles = {n: p for n, p in (e.get("profiles") or {}).items() if isinstance(p, dict) and p.get("samples")}
    if profiles:
        lines += ["", "py-spy during the load (busy samples; waiting = in epoll or parked in C):", "",
                  "| process | waiting | on CPU, by library | our code on the stack |", "|---|---|---|---|"]
        for name, found in profiles.items():
            libs = ", ".join(f"{f} {p}%" for f, p in found["busy_by_library_percent"][:5])
            ours = ", ".join(f"{f} {p}%" for f, p in found["busy_ours_inclusive_percent"][:4])
            lines.append(f"| {name} | {found['waiting_percent']}% | {libs} | {ours} |")
    return lines


def _db_md(results: dict, _plot: str) -> list[str]:
    d = results["db_round_trips"]
    ferretdb_ms = _pick(results, "end_to_end", "cpu_seconds_per_query", "ferretdb")
    per_trip = (
        f" FerretDB spent {_fmt(ferretdb_ms * 1000 / d['per_query'])} ms of CPU per round trip in the end-to-end run."
        if ferretdb_ms is not None and _number(d.get("per_query")) else ""
    )
    lines = [
        f"**{_fmt(d['per_query'])}** per query (aggregator + notifier; {d['how']}); "
        f"by service: {', '.join(f'{k} {v}' for k, v in d['per_query_by_app'].items())}. "
        f"Getting a verification code: {_fmt(d['per_code'])} more per code. Idle: {_fmt(d['idle_per_s'])} a second."
        + per_trip,
        "", "| service | command | per query |", "|---|---|---|",
    ]
    for app, commands in d["per_query_by_command"].items():
        for cmd, n in commands.items():
            lines.append(f"| {app} | {cmd} | {n} |")
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
    bound = " (an upper bound: the run's last queries had not all been answered in time)" if i["hanging"].get("timed_out") else ""
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
            lat.plot([peak["accepted_per_s"]], [peak["p50_ms"]], "*", color=colour, markersize=12,
                     label=f"{label} closed-loop peak p50")
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
    print("\nheadlines (ratios to this run's ceilings):")
    for key in HEADLINES:
        verdict = targets[key]
        mark = {True: "met", False: "MISSED", None: ""}[verdict["met"]]
        target = verdict["target"] or ""
        print(f"  {key:<26} {_fmt(values.get(key), 4):>10}  {target:<10} {mark}")
