"""The stack under test: started as `make run` starts it (devstack.Stack, on
free ports with its own data folder), with the bench's scenario, roomy
channel quotas and the limits below raised; optionally with the database
behind the counting proxy (mongo_wire_counter.py).

The bench drives it only through its external interfaces: the channel API
(gRPC, mutual TLS as channel `wechat-demo`), the HTTP API, and the
simulators' inspection and test hooks.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import grpc

from bench import proc_stats
from bench.mongo_wire_counter import WireCounter
from devstack.stack import Ports, Stack

# Limits that would otherwise be what the bench measures (documented in
# the results): every HTTP request comes from 127.0.0.1 on behalf of four
# users, far past the gateway's per-IP and per-user limits
# (gateway/settings.py); and the notifier's pace towards the SMS centre
# (50 parts/s per bind by default, an agreement with the operator's centre)
# would cap the whole pipeline at about 20 result SMS a second.
RAISED_LIMITS = {
    "YZTC_GATEWAY_LIMIT_IP_REQUESTS": "1000000000/60",
    "YZTC_GATEWAY_LIMIT_USER_REQUESTS": "1000000000/60",
    "YZTC_GATEWAY_LIMIT_USER_SESSIONS": "1000000000/3600",
    "YZTC_GATEWAY_LIMIT_SESSION_CODES": "1000000000/3600",
    "YZTC_GATEWAY_LIMIT_IP_CODES": "1000000000/3600",
    "YZTC_NOTIFIER_MAX_PER_SECOND": "1000000",
}


NOTIFIER = "sms_notifier"  # the notifier's child name in devstack


class StackUnderTest:
    def __init__(
        self,
        var: Path,
        scenario: Path,
        channels: Path,
        *,
        count_db: bool = False,
        aggregator_env: dict[str, str] | None = None,
    ) -> None:
        self.ports = Ports.free()
        self.counter = WireCounter(self.ports.database) if count_db else None
        self._var = var
        self._scenario = scenario
        self._channels = channels
        self._aggregator_env = aggregator_env or {}
        self.stack: Stack | None = None

    def start(self) -> None:
        mongodb_uri = None
        if self.counter is not None:
            # Services reach FerretDB through the proxy: start the database
            # ourselves, then the proxy, then the stack on the proxy's port.
            self.counter.start()
            mongodb_uri = f"mongodb://127.0.0.1:{self.counter.port}/yztc"
        self.stack = Stack(
            self._var,
            self.ports,
            scenario=str(self._scenario),
            mongodb_uri=mongodb_uri,
            aggregator_env={"YZTC_AGGREGATOR_CHANNELS_FILE": str(self._channels), **self._aggregator_env},
            # The round-trip count reads the companies simulator's answers
            # from its log, written at DEBUG.
            extra_env={**RAISED_LIMITS, **({"YZTC_SIM_LOG_LEVEL": "DEBUG"} if self.counter is not None else {})},
        )
        try:
            if self.counter is not None:
                database = self.stack.database()
                self.stack.supervisor.start(database)
                self.stack.supervisor.wait_ready([database], 60)
            self.stack.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()  # the database too, when we started it: same supervisor
        if self.counter is not None:
            self.counter.stop()

    def use_sms_protocol(self, protocol: str, timeout: float = 60.0) -> None:
        """Has the stack's notifier speak `protocol` (`smpp34` or `cmpp30`) to
        the SMS-centre simulator: stopped (SIGTERM, as at the end of `make
        run`) and started again with YZTC_NOTIFIER_SMSC_PROTOCOL set, as
        `YZTC_NOTIFIER_SMSC_PROTOCOL=cmpp30 make run` starts it; nothing
        else is touched. Returns once it listens again."""
        assert self.stack is not None
        child = next(c for c in self.stack.supervisor.children if c.name == NOTIFIER)
        if self.sms_protocol() == protocol:
            return
        assert child.process is not None
        try:
            os.killpg(child.process.pid, signal.SIGTERM)
            child.process.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        child.env["YZTC_NOTIFIER_SMSC_PROTOCOL"] = protocol
        self.stack.supervisor.restart(NOTIFIER, timeout)

    def sms_protocol(self) -> str:
        """The protocol the notifier was started with."""
        assert self.stack is not None
        child = next(c for c in self.stack.supervisor.children if c.name == NOTIFIER)
        return child.env.get("YZTC_NOTIFIER_SMSC_PROTOCOL", "smpp34")

    def notifier_env(self) -> dict[str, str]:
        """The environment the notifier runs with (its settings, the stack's secrets)."""
        assert self.stack is not None
        return dict(next(c for c in self.stack.supervisor.children if c.name == NOTIFIER).env)

    # -- what the bench reads --------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        assert self.stack is not None
        return self.stack.pki_dir

    @property
    def aggregator_target(self) -> str:
        return f"127.0.0.1:{self.ports.aggregator}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def pids(self) -> dict[str, int]:
        """Every child of the stack by name (its process group leader)."""
        assert self.stack is not None
        return {c.name: c.process.pid for c in self.stack.supervisor.children if c.process and c.process.poll() is None}

    def log_path(self, child: str) -> Path:
        """A child's output (devstack's supervisor writes <var>/logs/<name>.log)."""
        assert self.stack is not None
        return self.stack.var / "logs" / f"{child}.log"

    def config(self) -> dict:
        """The run's configuration stamp, read from what the children were
        started with and, for the event loop, from what each process has
        loaded (a uvloop extension in /proc/<pid>/maps)."""
        assert self.stack is not None
        children = {c.name: c for c in self.stack.supervisor.children}
        services = {
            n: c for n, c in children.items() if n.startswith(("aggregator", "sms_notifier", "gateway", "connector-"))
        }

        def env(name: str, key: str) -> str | None:
            child = children.get(name)
            return None if child is None else child.env.get(key)

        loops = {}
        for name, child in services.items():
            if child.process is not None and child.process.poll() is None:
                loops[name] = proc_stats.event_loop(child.process.pid)
        kinds = sorted(set(loops.values()))
        ratio = env("aggregator", "YZTC_TRACES_SAMPLE_RATIO")
        default = _default_sample_ratio()
        return {
            "telemetry_exporter": env("aggregator", "YZTC_TRACES_EXPORTER") or "none",
            "traces_sample_ratio": float(ratio) if ratio else default,
            "traces_sample_ratio_from": "YZTC_TRACES_SAMPLE_RATIO"
            if ratio
            else ("the services' default" if default is not None else "no sampling setting in this code"),
            # The aggregator calls connectors and the notifier in mutual TLS
            # with its certificate (the switch below is older devstack's).
            "internal_tls": bool(env("aggregator", "YZTC_TLS_CERT"))
            or env("aggregator", "YZTC_AGGREGATOR_INTERNAL_TLS") in ("1", "true", "True"),
            "event_loop": kinds[0] if len(kinds) == 1 else ("mixed" if kinds else None),
            "event_loop_by_process": loops,
            "replicas": {
                "aggregator": sum(n.startswith("aggregator") for n in services),
                "sms_notifier": sum(n.startswith("sms_notifier") for n in services),
                "gateway": sum(n.startswith("gateway") for n in services),
                "connectors": sum(n.startswith("connector-") for n in services),
            },
            "notifier_max_per_second": env("sms_notifier", "YZTC_NOTIFIER_MAX_PER_SECOND") or "the notifier's default",
            # The other protocol's SMS figures come from the same stack, its notifier restarted (sms_protocols.py).
            "notifier_protocol": self.sms_protocol(),
            "mongodb": "FerretDB" + (" behind the counting proxy" if self.counter is not None else ""),
            "cores": os.cpu_count(),
        }

    def channel(self) -> grpc.aio.Channel:
        """The channel API as channel `wechat-demo` (mutual TLS)."""
        pki = self.pki_dir
        creds = grpc.ssl_channel_credentials(
            root_certificates=(pki / "ca.pem").read_bytes(),
            private_key=(pki / "wechat-demo-key.pem").read_bytes(),
            certificate_chain=(pki / "wechat-demo.pem").read_bytes(),
        )
        return grpc.aio.secure_channel(self.aggregator_target, creds)

    # -- the simulators' test hooks --------------------------------------------

    async def submits(self, http: aiohttp.ClientSession, dest: str) -> list[dict]:
        """Every submit_sm the SMS centre received for `dest` (its `at` in Unix seconds)."""
        url = f"http://127.0.0.1:{self.ports.sim_smsc}/sim/submits"
        async with http.get(url, params={"dest": dest}) as response:
            response.raise_for_status()
            return (await response.json())["submits"]

    async def set_company(self, http: aiohttp.ClientSession, company: str, **behaviour) -> None:
        url = f"http://127.0.0.1:{self.ports.sim_companies}/sim/companies/{company}/behaviour"
        async with http.put(url, json=behaviour) as response:
            if response.status != 200:
                raise RuntimeError(f"company {company} behaviour not changed: {await response.text()}")

    async def company_calls(self, http: aiohttp.ClientSession) -> dict[str, dict[str, int]]:
        """{company: {request id (our query id): count requests}} since the start."""
        async with http.get(f"http://127.0.0.1:{self.ports.sim_companies}/sim/companies/calls") as response:
            response.raise_for_status()
            return (await response.json())["calls"]


def _default_sample_ratio() -> float | None:
    """The services' own default head-sampling ratio, when the run sets none."""
    try:
        from yztc.settings import CommonSettings

        field = CommonSettings.model_fields.get("traces_sample_ratio")
        return float(field.default) if field is not None and field.default is not None else None
    except Exception:  # noqa: BLE001 - a stamp, never a reason to fail the run
        return None
