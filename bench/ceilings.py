"""What this machine does with the frameworks alone, measured in the same run
as the pipeline so every headline is a ratio, not an absolute that drifts:

- a bare grpc.aio unary echo between two processes (RPC/s), plaintext and
  over mutual TLS (as our internal links), each with its CPU per call
  (client + server, from the processes' own CPU time): the floor that
  `service_cpu_vs_grpc_floor` divides by;
- the mutual TLS echo again, paced at `PACED_RATE` calls a second (open
  loop): what a call costs at about the rate each company connector serves
  in the end-to-end run, where a process mostly waits and every call wakes
  it (measured here: the server's CPU per call at 20/s is about twice that
  at 320/s). Informational: the floor the target divides by stays the
  saturated echo;
- the fan-out's shape: one server calling 8 echo servers (8 processes, as
  our connectors are) concurrently per request (fan-outs/s);
- a bare aiohttp JSON handler under wrk (requests/s).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench import proc_stats, processes
from bench.echo_servers import METHOD
from bench.profiles import Profile
from bench.stats import summary_ms
from devstack import pki
from devstack.stack import free_ports

WRK_DIR = Path(__file__).resolve().parent / "wrk"


# Calls a second of the paced echo: about the rate of each company connector
# in the end-to-end run (one call per query, 70-90 queries/s on 2 cores).
PACED_RATE = 80.0


def measure(profile: Profile, work: Path) -> dict:
    logs = work / "ceiling-logs"
    echo = grpc_echo(profile, logs)
    echo_mtls = grpc_echo(profile, logs, work / "echo-pki")
    paced = grpc_echo(profile, logs, work / "echo-pki", rate=PACED_RATE)
    fanout = grpc_fanout(profile, logs)
    http = http_json(profile, logs)
    return {
        "grpc_echo": echo,
        "grpc_echo_mtls": echo_mtls,
        "grpc_echo_mtls_paced": paced,
        "grpc_fanout": fanout,
        "http_json": http,
    }


def _echo_result(result: dict) -> dict:
    return {
        "per_s": round(result["calls"] / result["seconds"], 1),
        "calls": result["calls"],
        "errors": result["errors"],
        "seconds": round(result["seconds"], 2),
        **summary_ms(result["latencies"]),
    }


def grpc_echo(profile: Profile, logs: Path, pki_dir: Path | None = None, rate: float | None = None) -> dict:
    """The echo, plaintext or (with `pki_dir`) mutual TLS, closed loop or
    (with `rate`) paced, and its CPU per call: the client's CPU over its
    timed loop plus the server's over the whole job (its few set-up calls
    included: a slight overstatement)."""
    (port,) = free_ports(1)
    argv = ["bench.echo_servers", "grpc-echo", str(port)]
    job = {
        "kind": "grpc_echo",
        "target": f"127.0.0.1:{port}",
        "method": METHOD,
        "concurrency": profile.concurrency,
        "seconds": profile.ceiling_seconds,
    }
    if rate is not None:
        job["rate"] = rate
    if pki_dir is not None:
        if not (pki_dir / "echo-client.pem").exists():
            pki.issue(pki_dir, "echo-server", server=True)
            pki.issue(pki_dir, "echo-client")
        argv.append(str(pki_dir))
        job["pki"] = str(pki_dir)
    with processes.servers([(argv, port)], logs) as (server,):
        before = proc_stats.cpu_seconds(server)
        result = processes.run_load(job)
        server_cpu = proc_stats.cpu_seconds(server) - before
    calls = result["calls"]
    client_ms = result["cpu_seconds"] * 1000 / calls if calls else float("nan")
    server_ms = server_cpu * 1000 / calls if calls else float("nan")
    return {
        "what": "grpc.aio unary echo, client and server in two processes, "
        + ("mutual TLS (ECDSA P-256 certificates, as devstack's)" if pki_dir else "plaintext")
        + (f", paced at {rate:g} calls/s" if rate is not None else ""),
        **_echo_result(result),
        "cpu_ms_per_call": round(client_ms + server_ms, 4),
        "client_cpu_ms_per_call": round(client_ms, 4),
        "server_cpu_ms_per_call": round(server_ms, 4),
    }


def grpc_fanout(profile: Profile, logs: Path) -> dict:
    ports = free_ports(9)
    fan, leaves = ports[0], ports[1:]
    commands = [(["bench.echo_servers", "grpc-echo", str(p)], p) for p in leaves]
    targets = ",".join(f"127.0.0.1:{p}" for p in leaves)
    commands.append((["bench.echo_servers", "grpc-fanout", str(fan), targets], fan))
    with processes.servers(commands, logs):
        result = processes.run_load(
            {
                "kind": "grpc_echo",
                "target": f"127.0.0.1:{fan}",
                "method": METHOD,
                "concurrency": profile.concurrency,
                "seconds": profile.ceiling_seconds,
            }
        )
    return {
        "what": "one grpc.aio server calling 8 echo servers (8 processes) concurrently per request",
        **_echo_result(result),
    }


def http_json(profile: Profile, logs: Path) -> dict:
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/echo"
    with processes.servers([(["bench.echo_servers", "http-json", str(port)], port)], logs):
        wrk = processes.tool("wrk")
        if wrk:
            found = run_wrk(wrk, url, WRK_DIR / "post_json.lua", [], profile)
            return {
                "what": "aiohttp JSON handler (parse body, answer 202 JSON) under wrk",
                "tool": "wrk",
                "per_s": round(found["requests"] / (found["duration_us"] / 1e6), 1),
                "requests": found["requests"],
                "errors": found["errors"],
                "p50_ms": round(found["p50_us"] / 1000, 2),
                "p99_ms": round(found["p99_us"] / 1000, 2),
            }
        result = processes.run_load(
            {
                "kind": "http_post",
                "url": url,
                "concurrency": profile.concurrency,
                "seconds": profile.ceiling_seconds,
                "body": {"phone": "13800138000", "code": "123456"},
            }
        )
        return {
            "what": "aiohttp JSON handler under the Python load client (wrk not installed)",
            "tool": "python",
            **_echo_result(result),
        }


def run_wrk(wrk: str, url: str, script: Path, args: list[str], profile: Profile, seconds: float | None = None) -> dict:
    """One wrk run (1 thread: the machine has 2 cores to share with the
    servers); the script's done() prints the JSON line read back here."""
    duration = max(1, round(seconds or profile.ceiling_seconds))
    argv = [
        wrk,
        "-t1",
        f"-c{profile.concurrency}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    if args:
        argv += ["--", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr[-2000:]}")
    last = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not last:
        raise RuntimeError(f"wrk printed no result: {done.stdout[-2000:]}")
    return json.loads(last[-1])
