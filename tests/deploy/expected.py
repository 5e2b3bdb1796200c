"""The service map the manifests must implement: the workloads of each
overlay, who may call each of them on which port, and whom each calls."""

from __future__ import annotations

import json

from tests.deploy.conftest import ROOT
from yztc.identifiers import OPERATOR_IDS

# Companies join by configuration: the catalogue, not a list in code.
COMPANY_IDS = tuple(
    row["id"] for row in json.loads((ROOT / "config" / "enterprises.json").read_text(encoding="utf-8"))["enterprises"]
)
CONNECTORS = tuple(f"connector-{eid}" for eid in (*COMPANY_IDS, *OPERATOR_IDS))
SERVICES = ("gateway", "aggregator", "sms-notifier", *CONNECTORS)  # the yztc image
WORKLOADS = {
    "prod": (*SERVICES, "otel-collector"),
    "dev": (*SERVICES, "otel-collector", "mongodb", "simulators"),
}
CASES = [(overlay, name) for overlay, names in WORKLOADS.items() for name in names]
IDS = [f"{overlay}-{name}" for overlay, name in CASES]

# Callers, per port, of each workload (ports it does not list: no one).
INGRESS_NGINX, PROMETHEUS = "ns:ingress-nginx", "ns:monitoring"
CHANNEL_NETWORKS = {"ip:192.0.2.0/24", "ip:198.51.100.0/24"}  # prod's channel-api component
MONGODB_CLIENTS = {"gateway", "aggregator", "sms-notifier"}


def expected_callers(overlay: str, name: str) -> dict[int, set[str]]:
    if name == "gateway":
        return {8080: {INGRESS_NGINX}, 9464: {PROMETHEUS}}
    if name == "aggregator":
        # 50051: the public channel API (channels' CA); 50053: the internal
        # port (internal CA), the gateway's.
        return {50051: CHANNEL_NETWORKS if overlay == "prod" else set(), 50053: {"gateway"}, 9464: {PROMETHEUS}}
    if name == "sms-notifier":
        return {50052: {"aggregator"}, 9464: {PROMETHEUS}}
    if name in CONNECTORS:
        return {50060: {"aggregator"}, 9464: {PROMETHEUS}}
    if name == "otel-collector":
        return {4318: set(SERVICES), 8888: {PROMETHEUS}, 13133: set()}
    if name == "mongodb":
        return {27017: MONGODB_CLIENTS}
    if name == "simulators":
        # 9104 is the SMS centre's inspection API: for people, by port-forward.
        return {9101: set(CONNECTORS), 9102: set(CONNECTORS), 9103: {"gateway"}, 9104: set(), 2775: {"sms-notifier"}}
    raise AssertionError(name)


INTERNET = "ip:203.0.113.80"  # any public address (RFC 5737)
PROD_MONGODB = "ip:203.0.113.10"  # inside prod's placeholder replica-set network


def expected_egress(overlay: str, name: str) -> set[tuple[str, int]]:
    """Connections the workload must be able to open (beyond DNS)."""
    database = {("mongodb" if overlay == "dev" else PROD_MONGODB, 27017)}
    traces = {("otel-collector", 4318)}
    if name == "gateway":
        alipay = ("simulators", 9103) if overlay == "dev" else (INTERNET, 443)
        return {("aggregator", 50053), alipay} | database | traces
    if name == "aggregator":
        return {(c, 50060) for c in CONNECTORS} | {("sms-notifier", 50052)} | database | traces
    if name == "sms-notifier":
        smsc = {("simulators", 2775)} if overlay == "dev" else {(INTERNET, 2775)}
        return smsc | database | traces
    if name in CONNECTORS:
        if overlay == "dev":
            return {("simulators", 9101 if name.removeprefix("connector-") in COMPANY_IDS else 9102)} | traces
        return {(INTERNET, 443)} | traces
    if name == "otel-collector":
        return {(INTERNET, 4317)}
    return set()
