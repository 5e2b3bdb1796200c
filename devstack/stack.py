"""The whole local stack as `make run` starts it, on the CONTRACT's default
ports or on free ports (tests, benchmark), with its data under one folder."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from devstack import pki, secrets
from devstack.supervisor import Child, Supervisor, python_module
from yztc.identifiers import COMPANY_IDS, OPERATOR_IDS

ROOT = Path(__file__).resolve().parent.parent
FERRETDB = ROOT / ".tools" / "bin" / "ferretdb"
GATEWAY_CHANNEL = "alipay-gateway"
DEMO_CHANNEL = "wechat-demo"
ALIPAY_APP_ID = "2021000000000001"
# The development SP_Id (CMPP Source_Addr, 6 digits) the notifier and the simulator share.
CMPP_SP_ID = "901234"

# What the children get unless the environment says otherwise.
DEFAULTS = {
    "YZTC_LOG_LEVEL": "INFO",
    "YZTC_TRACES_EXPORTER": "none",
    "YZTC_TRACES_FILE": "",
    "YZTC_TRACES_SAMPLE_RATIO": "0.01",
    "YZTC_TRACE_DB": "false",
}

# The stack's own settings: its addresses, TLS files, keys and credentials,
# which it gives its children itself. Every other YZTC_* variable in the
# environment reaches every service, as the same variable would in
# production; one of these is not passed on to any child (the stack's value
# wins, and `make run` names what it ignored). YZTC_METRICS_* are not set by
# the stack but kept back too: one port cannot serve seventeen processes.
STACK_OWNED = frozenset(
    {
        "YZTC_DEVELOPMENT",
        "YZTC_TLS_CA",
        "YZTC_TLS_CERT",
        "YZTC_TLS_KEY",
        "YZTC_METRICS_PORT",
        "YZTC_METRICS_HOST",
        "YZTC_SIM_COMPANIES_LISTEN",
        "YZTC_SIM_OPERATORS_LISTEN",
        "YZTC_SIM_ALIPAY_LISTEN",
        "YZTC_SIM_SMSC_LISTEN",
        "YZTC_SIM_SMPP_LISTEN",
        "YZTC_SIM_SMPP_SYSTEM_ID",
        "YZTC_SIM_SMPP_PASSWORD",
        "YZTC_SIM_CMPP_LISTEN",
        "YZTC_SIM_CMPP_SOURCE_ADDR",
        "YZTC_SIM_CMPP_SHARED_SECRET",
        "YZTC_SIM_ALIPAY_APP_ID",
        "YZTC_SIM_ALIPAY_PRIVATE_KEY_FILE",
        "YZTC_SIM_ALIPAY_APP_PUBLIC_KEY_FILE",
        "YZTC_SIM_ALIPAY_AES_KEY",
        "YZTC_SIM_PARTNER_KEYS_FILE",
        "YZTC_CONNECTOR_LISTEN",
        "YZTC_CONNECTOR_UPSTREAM_URL",
        "YZTC_CONNECTOR_PARTNER_KEY_FILE",
        "YZTC_CONNECTOR_PARTNER_KEY_ID",
        "YZTC_NOTIFIER_LISTEN",
        "YZTC_NOTIFIER_SMSC_HOST",
        "YZTC_NOTIFIER_SMSC_PORT",
        "YZTC_NOTIFIER_SYSTEM_ID",
        "YZTC_NOTIFIER_PASSWORD",
        "YZTC_NOTIFIER_DATA_KEY",
        "YZTC_NOTIFIER_DATA_KEY_ID",
        "YZTC_NOTIFIER_CMPP_HOST",
        "YZTC_NOTIFIER_CMPP_PORT",
        "YZTC_NOTIFIER_CMPP_SOURCE_ADDR",
        "YZTC_NOTIFIER_CMPP_SHARED_SECRET",
        "YZTC_AGGREGATOR_LISTEN",
        "YZTC_AGGREGATOR_INTERNAL_LISTEN",
        "YZTC_AGGREGATOR_CHANNELS_CA",
        "YZTC_AGGREGATOR_COMPANIES",
        "YZTC_AGGREGATOR_OPERATORS",
        "YZTC_AGGREGATOR_NOTIFIER_TARGET",
        "YZTC_AGGREGATOR_PHONE_KEYS",
        "YZTC_AGGREGATOR_PHONE_KEY_ID",
        "YZTC_AGGREGATOR_HASH_KEYS",
        "YZTC_AGGREGATOR_HASH_KEY_ID",
        "YZTC_GATEWAY_LISTEN",
        "YZTC_GATEWAY_SERVE_TLS",
        "YZTC_GATEWAY_AGGREGATOR_TARGET",
        "YZTC_GATEWAY_AGGREGATOR_SERVER_NAME",
        "YZTC_GATEWAY_ALIPAY_URL",
        "YZTC_GATEWAY_ALIPAY_APP_ID",
        "YZTC_GATEWAY_ALIPAY_APP_PRIVATE_KEY_FILE",
        "YZTC_GATEWAY_ALIPAY_PUBLIC_KEY_FILE",
        "YZTC_GATEWAY_ALIPAY_AES_KEY",
    }
)


def devstack_knob(name: str) -> bool:
    """Variables read by devstack itself, not by any service."""
    return name.startswith("YZTC_DEVSTACK_") or name == "YZTC_FERRETDB_DEBUG_ADDR"


@dataclass
class Ports:
    gateway: int = 8080
    aggregator: int = 50051
    notifier: int = 50052
    # The aggregator's internal port (the gateway's channel API, probes).
    aggregator_internal: int = 50053
    database: int = 27018
    sim_companies: int = 9101
    sim_operators: int = 9102
    sim_alipay: int = 9103
    sim_smsc: int = 9104
    sim_smpp: int = 2775
    sim_cmpp: int = 7890
    companies: dict[str, int] = field(default_factory=lambda: {cid: 50061 + i for i, cid in enumerate(COMPANY_IDS)})
    operators: dict[str, int] = field(default_factory=lambda: {oid: 50071 + i for i, oid in enumerate(OPERATOR_IDS)})

    @classmethod
    def free(cls, companies: tuple[str, ...] = COMPANY_IDS) -> Ports:
        """Ports the OS says are free now."""
        found = iter(free_ports(11 + len(companies) + len(OPERATOR_IDS)))

        def pick() -> int:
            return next(found)

        return cls(
            gateway=pick(),
            aggregator=pick(),
            notifier=pick(),
            database=pick(),
            sim_companies=pick(),
            sim_operators=pick(),
            sim_alipay=pick(),
            sim_smsc=pick(),
            sim_smpp=pick(),
            sim_cmpp=pick(),
            aggregator_internal=pick(),
            companies={cid: pick() for cid in companies},
            operators={oid: pick() for oid in OPERATOR_IDS},
        )


def free_ports(count: int) -> list[int]:
    """`count` different ports the OS says are free now (each bound to 0 and
    read back, all held until the last is picked, then released)."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
    ports = [sock.getsockname()[1] for sock in held]
    for sock in held:
        sock.close()
    return ports


def free_port() -> int:
    """A port nothing listens on now (for a service to start on, or to stand
    for one that is down)."""
    return free_ports(1)[0]


def _addr(port: int) -> str:
    return f"127.0.0.1:{port}"


class Stack:
    """Builds the children of the stack and starts them in dependency order."""

    def __init__(
        self,
        var: Path,
        ports: Ports,
        *,
        scenario: str | None = None,
        mongodb_uri: str | None = None,
        echo: TextIO | None = None,
        extra_env: dict[str, str] | None = None,
        aggregator_env: dict[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`environ` (default os.environ) is where the services' YZTC_*
        settings and MONGODB_URI come from; `extra_env` is given to every
        child over those, `aggregator_env` to the aggregator; the stack's
        own settings (STACK_OWNED) win over all three."""
        self.var = var.resolve()
        self.ports = ports
        self._environ = dict(os.environ if environ is None else environ)
        self.scenario = scenario or self._environ.get("YZTC_SCENARIO", "")
        self.mongodb_uri = (
            mongodb_uri or self._environ.get("MONGODB_URI") or (f"mongodb://127.0.0.1:{ports.database}/yztc")
        )
        self._own_database = not (mongodb_uri or self._environ.get("MONGODB_URI"))
        self.supervisor = Supervisor(self.var / "logs", echo=echo)
        self._extra = extra_env or {}
        self._aggregator_env = aggregator_env or {}
        self.pki_dir = self.var / "pki"
        self.keys_dir = self.var / "keys"

    # -- set-up ---------------------------------------------------------------

    def _identity(self, name: str) -> dict[str, str]:
        """The TLS settings of an internal service: its certificate from the
        internal CA (SAN URI spiffe://yztc/service/<name>), serving and
        calling in mutual TLS."""
        cert, key = pki.issue_service(self.pki_dir, name)
        return {"YZTC_TLS_CA": str(self.pki_dir / "ca.pem"), "YZTC_TLS_CERT": str(cert), "YZTC_TLS_KEY": str(key)}

    @property
    def channels_ca(self) -> Path:
        """The channels' CA: signs channel certificates only (devstack/pki.py)."""
        return self.pki_dir / f"{pki.CHANNELS_CA}.pem"

    def prepare(self) -> None:
        """PKI (the internal CA, the channels' CA, the demo channel's
        certificate) and development secrets, made once and reused."""
        pki.ensure_ca(self.pki_dir, pki.INTERNAL_CA)
        pki.ensure_ca(self.pki_dir, pki.CHANNELS_CA)
        pki.issue_channel(self.pki_dir, DEMO_CHANNEL)
        secrets.rsa_pair(self.keys_dir, "alipay-app")
        secrets.rsa_pair(self.keys_dir, "alipay-sim")

    def passed_on(self) -> dict[str, str]:
        """The YZTC_* settings of the environment that reach every service."""
        return {
            k: v
            for k, v in self._environ.items()
            if k.startswith("YZTC_") and k not in STACK_OWNED and not devstack_knob(k)
        }

    def ignored(self) -> list[str]:
        """Names of YZTC_* variables in the environment that the stack sets itself."""
        return sorted(k for k in self._environ if k in STACK_OWNED)

    def _env(self, **values: str) -> dict[str, str]:
        """A child's environment: the non-YZTC environment, DEFAULTS, the
        settings passed on, `extra_env`, then the stack's own `values`."""
        env = {k: v for k, v in self._environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
        env.update(DEFAULTS)
        env.update(self.passed_on())
        # The stack is development: simulators over http://, development
        # keys and the demo channel (internal gRPC is mutual TLS all the same).
        env.update(PYTHONUNBUFFERED="1", MONGODB_URI=self.mongodb_uri, YZTC_DEVELOPMENT="1")
        if self.scenario:
            env["YZTC_SCENARIO"] = self.scenario
        env.update(self._extra)
        env.update(values)
        return env

    # -- the children ---------------------------------------------------------

    def database(self) -> Child:
        data = self.var / "ferretdb"
        argv = [str(FERRETDB), "--listen-addr", _addr(self.ports.database), "--data-dir", str(data)]
        if debug := self._environ.get("YZTC_FERRETDB_DEBUG_ADDR"):
            argv += ["--debug-addr", debug]  # Go's /debug/pprof/, to profile the database's CPU
        return Child(
            "ferretdb",
            argv,
            self._env(),
            ready_port=self.ports.database,
            listens=f"mongodb://{_addr(self.ports.database)}/ (FerretDB, data in {data})",
        )

    def simulators(self) -> Child:
        p = self.ports
        return Child(
            "simulators",
            python_module("simulators"),
            self._env(
                YZTC_SIM_COMPANIES_LISTEN=_addr(p.sim_companies),
                YZTC_SIM_OPERATORS_LISTEN=_addr(p.sim_operators),
                YZTC_SIM_ALIPAY_LISTEN=_addr(p.sim_alipay),
                YZTC_SIM_SMSC_LISTEN=_addr(p.sim_smsc),
                YZTC_SIM_SMPP_LISTEN=_addr(p.sim_smpp),
                YZTC_SIM_SMPP_SYSTEM_ID="yztc",
                # SMPP passwords are at most 8 characters; a development one, made once.
                YZTC_SIM_SMPP_PASSWORD=secrets.symmetric_key(self.keys_dir, "smpp-password")[:8],
                YZTC_SIM_CMPP_LISTEN=_addr(p.sim_cmpp),
                YZTC_SIM_CMPP_SOURCE_ADDR=CMPP_SP_ID,
                YZTC_SIM_CMPP_SHARED_SECRET=secrets.symmetric_key(self.keys_dir, "cmpp-shared-secret"),
                YZTC_SIM_ALIPAY_APP_ID=ALIPAY_APP_ID,
                YZTC_SIM_ALIPAY_PRIVATE_KEY_FILE=str(self.keys_dir / "alipay-sim-private.pem"),
                YZTC_SIM_ALIPAY_APP_PUBLIC_KEY_FILE=str(self.keys_dir / "alipay-app-public.pem"),
                YZTC_SIM_ALIPAY_AES_KEY=secrets.symmetric_key(self.keys_dir, "alipay-aes"),
                # The connectors' public keys, which the simulated enterprises check (docs/partner-api.md).
                YZTC_SIM_PARTNER_KEYS_FILE=str(secrets.partner_keys_file(self.keys_dir, [*p.companies, *p.operators])),
            ),
            ready_port=p.sim_smsc,
            listens=(
                f"companies http://{_addr(p.sim_companies)}, operators http://{_addr(p.sim_operators)}, "
                f"Alipay http://{_addr(p.sim_alipay)}/gateway.do, SMS centre http://{_addr(p.sim_smsc)}/messages"
                f", smpp://{_addr(p.sim_smpp)} and cmpp://{_addr(p.sim_cmpp)}"
            ),
        )

    def connectors(self) -> list[Child]:
        children = []
        for kind, ports, base in (
            ("company", self.ports.companies, f"http://{_addr(self.ports.sim_companies)}/companies"),
            ("operator", self.ports.operators, f"http://{_addr(self.ports.sim_operators)}/operators"),
        ):
            for eid, port in ports.items():
                children.append(
                    Child(
                        f"connector-{eid}",
                        python_module("platform_connectors", kind, eid),
                        self._env(
                            YZTC_CONNECTOR_LISTEN=_addr(port),
                            YZTC_CONNECTOR_UPSTREAM_URL=f"{base}/{eid}",
                            YZTC_CONNECTOR_PARTNER_KEY_FILE=str(secrets.partner_key(self.keys_dir, eid)),
                            YZTC_CONNECTOR_PARTNER_KEY_ID=secrets.partner_key_id(eid),
                            **self._identity(f"connector-{eid}"),
                        ),
                        ready_port=port,
                        listens=f"grpc {_addr(port)}",
                    )
                )
        return children

    def notifier(self) -> Child:
        env = self._env(
            YZTC_NOTIFIER_LISTEN=_addr(self.ports.notifier),
            YZTC_NOTIFIER_SMSC_HOST="127.0.0.1",
            YZTC_NOTIFIER_SMSC_PORT=str(self.ports.sim_smpp),
            YZTC_NOTIFIER_SYSTEM_ID="yztc",
            YZTC_NOTIFIER_PASSWORD=secrets.symmetric_key(self.keys_dir, "smpp-password")[:8],
            YZTC_NOTIFIER_DATA_KEY=secrets.symmetric_key(self.keys_dir, "notifier-data"),
            YZTC_NOTIFIER_DATA_KEY_ID="k1",
            # Used when YZTC_NOTIFIER_SMSC_PROTOCOL=cmpp30 (a setting the stack passes on as is).
            YZTC_NOTIFIER_CMPP_HOST="127.0.0.1",
            YZTC_NOTIFIER_CMPP_PORT=str(self.ports.sim_cmpp),
            YZTC_NOTIFIER_CMPP_SOURCE_ADDR=CMPP_SP_ID,
            YZTC_NOTIFIER_CMPP_SHARED_SECRET=secrets.symmetric_key(self.keys_dir, "cmpp-shared-secret"),
            **self._identity("sms-notifier"),
        )
        # The start-up table says which protocol the notifier speaks, and to where.
        if env.get("YZTC_NOTIFIER_SMSC_PROTOCOL", "smpp34") == "cmpp30":
            centre = f"CMPP 3.0 to cmpp://{_addr(self.ports.sim_cmpp)}"
        else:
            centre = f"SMPP 3.4 to smpp://{_addr(self.ports.sim_smpp)}"
        return Child(
            "sms_notifier",
            python_module("sms_notifier"),
            env,
            ready_port=self.ports.notifier,
            listens=f"grpc {_addr(self.ports.notifier)}; SMS centre over {centre}",
        )

    def aggregator(
        self,
        name: str = "aggregator",
        port: int | None = None,
        internal_port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """The aggregator (or another replica of it, on its own ports: the
        internal one is a free port unless given). `env` is given to this
        replica over the stack's `aggregator_env` (e.g. its own hash keys:
        a key rotation reaching one replica first)."""
        p = self.ports
        internal_port = internal_port or (p.aggregator_internal if port is None else free_port())
        port = port or p.aggregator
        keys = {
            "YZTC_AGGREGATOR_PHONE_KEYS": json.dumps({"k1": secrets.symmetric_key(self.keys_dir, "phone-k1")}),
            "YZTC_AGGREGATOR_PHONE_KEY_ID": "k1",
            "YZTC_AGGREGATOR_HASH_KEYS": json.dumps({"h1": secrets.symmetric_key(self.keys_dir, "hash-h1")}),
            "YZTC_AGGREGATOR_HASH_KEY_ID": "h1",
        }
        return Child(
            name,
            python_module("aggregator"),
            self._env(
                **{**keys, **self._aggregator_env, **(env or {})},
                YZTC_AGGREGATOR_LISTEN=_addr(port),
                YZTC_AGGREGATOR_INTERNAL_LISTEN=_addr(internal_port),
                YZTC_AGGREGATOR_CHANNELS_CA=str(self.channels_ca),
                YZTC_AGGREGATOR_COMPANIES=json.dumps({c: _addr(port) for c, port in p.companies.items()}),
                YZTC_AGGREGATOR_OPERATORS=json.dumps({o: _addr(port) for o, port in p.operators.items()}),
                YZTC_AGGREGATOR_NOTIFIER_TARGET=_addr(p.notifier),
                # Internal links in mutual TLS: connectors and the notifier
                # answer only spiffe://yztc/service/aggregator.
                **self._identity("aggregator"),
            ),
            ready_port=port,
            listens=(
                f"grpc {_addr(port)} (channel API, mutual TLS: client certificates from the channels' CA"
                f" {self.channels_ca}, server certificate from the internal CA {self.pki_dir / 'ca.pem'});"
                f" internal grpc {_addr(internal_port)} (the gateway, probes; internal CA)"
            ),
        )

    def gateway(self) -> Child:
        p = self.ports
        return Child(
            "gateway",
            python_module("gateway"),
            self._env(
                YZTC_GATEWAY_LISTEN=_addr(p.gateway),
                # Plain HTTP on loopback, as the CONTRACT's http://127.0.0.1:8080.
                YZTC_GATEWAY_SERVE_TLS="false",
                YZTC_GATEWAY_AGGREGATOR_TARGET=_addr(p.aggregator_internal),
                YZTC_GATEWAY_AGGREGATOR_SERVER_NAME="aggregator",  # as in the stack's PKI
                YZTC_GATEWAY_ALIPAY_URL=f"http://{_addr(p.sim_alipay)}/gateway.do",
                YZTC_GATEWAY_ALIPAY_APP_ID=ALIPAY_APP_ID,
                YZTC_GATEWAY_ALIPAY_APP_PRIVATE_KEY_FILE=str(self.keys_dir / "alipay-app-private.pem"),
                YZTC_GATEWAY_ALIPAY_PUBLIC_KEY_FILE=str(self.keys_dir / "alipay-sim-public.pem"),
                YZTC_GATEWAY_ALIPAY_AES_KEY=secrets.symmetric_key(self.keys_dir, "alipay-aes"),
                **self._identity("gateway"),
            ),
            ready_port=p.gateway,
            listens=f"http://{_addr(p.gateway)}",
        )

    # -- life -----------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start in dependency order, each wave ready before the next."""
        self.prepare()
        waves: list[list[Child]] = []
        if self._own_database:
            waves.append([self.database()])
        waves += [
            [self.simulators(), *self.connectors(), self.notifier()],
            [self.aggregator()],
            [self.gateway()],
        ]
        try:
            for wave in waves:
                for child in wave:
                    self.supervisor.start(child)
                self.supervisor.wait_ready(wave, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.supervisor.stop_all()

    def add(self, child: Child, timeout: float = 60.0) -> Child:
        """Starts one more child (e.g. a second aggregator replica) and waits until ready."""
        self.supervisor.start(child)
        self.supervisor.wait_ready([child], timeout)
        return child

    def kill(self, name: str) -> None:
        """kill -9, as a crash would."""
        self.supervisor.kill(name)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        self.supervisor.restart(name, timeout)

    def describe(self) -> str:
        lines = [f"  {c.name:<18} {c.listens}" for c in self.supervisor.children]
        return "\n".join(lines)
