"""Each yztc container of each overlay, as it would start: its environment
(ConfigMaps, Secrets, downward API) and its mounted files rebuilt from the
manifests, then the service's own settings class loads them. Catches a
missing or misspelt variable, a file path no volume provides, a Secret key
the dev secrets script does not make, and a target no Service answers."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import kubernetes_validate
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from aggregator.catalogue import load_catalogue
from aggregator.channel_quotas import ChannelsFile
from aggregator.number_routing import NumberRouting
from aggregator.settings import AggregatorSettings
from devstack.stack import free_port
from gateway.settings import GatewaySettings
from platform_connectors.settings import ConnectorSettings
from platform_connectors.upstream import Upstream
from simulators.settings import SimulatorSettings
from simulators.sms_centre_settings import SmsCentreSettings
from sms_notifier.settings import NotifierSettings
from tests.deploy.conftest import ROOT, load_dev_secrets
from tests.deploy.expected import COMPANY_IDS, OPERATOR_IDS, SERVICES
from tests.deploy.model import Workload, args, container_env, mounted_files, named, selects, workloads
from yztc.settings import GrpcTlsSettings

# python -m <module>: the settings classes it builds from the environment.
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "gateway": (GatewaySettings,),
    "aggregator": (AggregatorSettings, GrpcTlsSettings),
    "sms_notifier": (NotifierSettings,),
    "platform_connectors": (ConnectorSettings,),
    "simulators": (SimulatorSettings, SmsCentreSettings),
}
CASES = [(o, n) for o in ("dev", "prod") for n in SERVICES] + [("dev", "simulators")]


def env_names(model: type[BaseSettings]) -> dict[str, list[str]]:
    """Field -> the environment variables pydantic-settings reads it from."""
    prefix = model.model_config.get("env_prefix", "")
    names: dict[str, list[str]] = {}
    for field_name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[field_name] = [alias.upper()]
        elif isinstance(alias, AliasChoices):
            names[field_name] = [c.upper() for c in alias.choices if isinstance(c, str)]
        else:
            names[field_name] = [(prefix + field_name).upper()]
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings):
            names |= {f"{field_name}.{k}": v for k, v in env_names(info.annotation).items()}
    return names


def known_variables(module: str) -> set[str]:
    """YZTC_* variables the service reads: its settings, and names its code
    reads directly (e.g. the simulators' AES key)."""
    known = {n for model in SETTINGS[module] for names in env_names(model).values() for n in names}
    for folder in (ROOT / module, ROOT / "yztc"):
        for source in folder.glob("*.py"):
            known |= set(re.findall(r"\bYZTC_[A-Z0-9_]+\b", source.read_text(encoding="utf-8")))
    return known


def service_target(objs: list[dict], target: str) -> Workload:
    """The workload behind a `host:port` target, if a Service answers there."""
    host, _, port = target.rpartition(":")
    service = named(objs, "Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]], f"{target}: no such Service port"
    (w,) = [w for w in workloads(objs) if selects({"matchLabels": service["spec"]["selector"]}, w.labels)]
    return w


# The OTLP exporter's CA and client certificate: files the pod must have.
OTLP_FILES = (
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
)


def start(objects, overlay, name, stand_in_secrets, tmp_path, monkeypatch):
    """The container as it starts: (workload, module, argv, its settings
    objects, env), its mounted files written under tmp_path."""
    objs = objects[overlay]
    (w,) = [w for w in workloads(objs) if w.name == name]
    c = w.containers[0]
    env = container_env(objs, w, c, stand_in_secrets)
    argv = args(c, env)
    module = argv[0]
    files = mounted_files(objs, w, c, stand_in_secrets)
    for path, content in files.items():
        local = tmp_path / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content, encoding="utf-8")
    for key, value in env.items():
        if key.endswith(("_FILE", "_CA")) or key.startswith("YZTC_TLS_") or key in OTLP_FILES:
            assert value in files, f"{key}={value}: no volume puts a file there"
            env[key] = str(tmp_path / value.lstrip("/"))
    unknown = sorted(k for k in env if k.startswith("YZTC_") and k not in known_variables(module))
    assert not unknown, f"{name}: variables {module} does not read: {unknown}"
    for key in list(os.environ):
        if key.startswith(("YZTC_", "OTEL_", "MONGODB_URI")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for model in SETTINGS[module]:
        for field, names in env_names(model).items():
            info = model.model_fields.get(field)
            if info is not None and info.is_required():
                assert any(n in env for n in names), f"{name}: {names[0]} is required and not set"
    return w, module, argv, [model() for model in SETTINGS[module]], env


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=[f"{o}-{n}" for o, n in CASES])
def test_the_service_starts_with_its_configuration(
    objects, overlay, name, stand_in_secrets, tmp_path, monkeypatch
) -> None:
    objs = objects[overlay]
    w, module, argv, settings, env = start(objects, overlay, name, stand_in_secrets, tmp_path, monkeypatch)
    first = settings[0]
    ports = w.ports()
    if module != "simulators":
        assert first.traces_exporter == "otlp"
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint.startswith("https://"), "spans go to the collector in mutual TLS"
        assert service_target(objs, endpoint.removeprefix("https://")).name == "otel-collector"
        # The exporter's CA and client certificate are the pod's internal
        # identity (start() checked that a volume puts each file there).
        for variable, file in (("CERTIFICATE", "ca.crt"), ("CLIENT_CERTIFICATE", "tls.crt"), ("CLIENT_KEY", "tls.key")):
            assert env[f"OTEL_EXPORTER_OTLP_{variable}"] == str(tmp_path / "etc/yztc/tls" / file)
        assert ports.get(first.metrics_port) == "metrics" and first.metrics_host == "0.0.0.0"
    if module in ("gateway", "aggregator", "sms_notifier", "platform_connectors"):
        host, _, port = first.listen.rpartition(":")
        assert host == "0.0.0.0" and ports.get(int(port)) in ("https", "grpc")
    if module == "gateway":
        assert service_target(objs, first.aggregator_target).name == "aggregator"
        # HTTPS to the ingress controller with the certificate it verifies.
        assert first.serve_tls and first.tls.tls_cert and first.tls.tls_key
        assert not [r for r in first.production_refusals() if "SERVE_TLS" in r]
        assert first.tls.tls_cert, "the gateway is a channel of the aggregator: mutual TLS"
    elif module == "aggregator":
        aggregator, tls = settings
        assert tls.tls_cert and tls.tls_key and tls.tls_ca, "the channel API is mutual TLS"
        catalogue = {e.id for e in load_catalogue(aggregator.enterprises_file)}
        assert catalogue == set(aggregator.companies), "a connector target for every company, and no other"
        assert set(aggregator.operators) == set(OPERATOR_IDS)
        for kind, targets in (("company", aggregator.companies), ("operator", aggregator.operators)):
            for eid, target in targets.items():
                connector = service_target(objs, target)
                assert connector.labels["yztc/kind"] == kind and connector.labels["yztc/enterprise"] == eid
        assert service_target(objs, aggregator.notifier_target).name == "sms-notifier"
        assert aggregator.phone_key_id in aggregator.phone_keys
        # The other files it loads at start, as it loads them (the channels
        # file refused outside development if it admits a development channel).
        assert aggregator.development == (overlay == "dev")
        assert ChannelsFile(aggregator.channels_file, aggregator.development).current().channels
        assert NumberRouting.from_file(aggregator.number_segments_file)
    elif module == "platform_connectors":
        kind, eid = argv[1:]
        assert name == f"connector-{eid}"
        assert eid in {"company": COMPANY_IDS, "operator": OPERATOR_IDS}[kind]
        assert ".invalid" not in first.upstream_url, "the overlay sets the enterprise's URL"
        if overlay == "dev":
            assert first.upstream_url.startswith("http://simulators:")
        # Its link to the enterprise as it builds it at start: https outside
        # development, and a usable signing key of its own (M10).
        assert Upstream.from_settings(first, name)
        assert w.pod["volumes"] and f"yztc-connector-{eid}-partner" in [
            v.get("secret", {}).get("secretName") for v in w.pod["volumes"]
        ], "one signing key per connector"
    elif module == "sms_notifier":
        assert first.source_addr == "10699000"
        assert not first.smsc_host.endswith(".invalid"), "the overlay names the SMS centre"
        if overlay == "dev":
            assert service_target(objs, f"{first.smsc_host}:{first.smsc_port}").name == "simulators"
    if overlay == "dev" and module == "gateway":
        assert service_target(objs, first.alipay_url.removeprefix("http://").split("/")[0]).name == "simulators"


@pytest.mark.parametrize("overlay", ("dev", "prod"))
def test_no_secret_values_in_the_manifests(
    objects: dict[str, list[dict]], rendered: dict[str, str], overlay: str
) -> None:
    assert not [o for o in objects[overlay] if o["kind"] == "Secret"], "Secrets are referenced, never committed"
    assert "PRIVATE KEY" not in rendered[overlay]


def test_dev_secrets_are_valid_and_cover_every_reference(
    objects: dict[str, list[dict]], dev_secret_objects: list[dict], stand_in_secrets: dict[str, dict[str, str]]
) -> None:
    for secret in dev_secret_objects:
        kubernetes_validate.validate(secret, "1.33", strict=True)
        assert secret["metadata"]["namespace"] == "yztc-dev"
    for overlay in ("dev", "prod"):
        for w in workloads(objects[overlay]):
            for c in w.containers:
                container_env(objects[overlay], w, c, stand_in_secrets)  # KeyError if not covered
                mounted_files(objects[overlay], w, c, stand_in_secrets)
    assert stand_in_secrets["yztc-alipay"]["app-private-key.pem"].startswith("-----BEGIN RSA PRIVATE KEY-----"), (
        "alipay-sdk-python loads PKCS#1 only"
    )


def test_dev_secrets_are_kept_between_runs(tmp_path: Path) -> None:
    """A second run must not replace the phone keys (stored data would be lost)."""
    module = load_dev_secrets()
    assert module.dev_secrets(tmp_path) == module.dev_secrets(tmp_path)


def test_the_simulated_enterprises_accept_each_dev_connector_s_key(
    objects: dict[str, list[dict]], stand_in_secrets: dict[str, dict[str, str]]
) -> None:
    """dev: the simulators' key ring (YZTC_SIM_PARTNER_KEYS_FILE) holds, for
    each enterprise, the public half of its connector's key under the key id
    the connector signs with; otherwise every partner call would be 401."""
    objs = objects["dev"]
    by_name = {w.name: w for w in workloads(objs)}
    simulators = by_name["simulators"]
    sim = simulators.containers[0]
    sim_env = container_env(objs, simulators, sim, stand_in_secrets)
    ring_text = mounted_files(objs, simulators, sim, stand_in_secrets)[sim_env["YZTC_SIM_PARTNER_KEYS_FILE"]]
    ring = json.loads(ring_text)
    for eid in (*COMPANY_IDS, *OPERATOR_IDS):
        w = by_name[f"connector-{eid}"]
        c = w.containers[0]
        env = container_env(objs, w, c, stand_in_secrets)
        private = serialization.load_pem_private_key(
            mounted_files(objs, w, c, stand_in_secrets)[env["YZTC_CONNECTOR_PARTNER_KEY_FILE"]].encode(), None
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert ring[eid][env["YZTC_CONNECTOR_PARTNER_KEY_ID"]].encode() == public, eid


async def test_the_gateway_as_rendered_answers_the_kubelet_and_the_ingress_over_https(
    objects, stand_in_secrets, tmp_path, monkeypatch, mongodb_uri
) -> None:
    """The dev overlay's gateway, started with the environment and files its
    pod gets (on a loopback port, with a real database): the kubelet's
    HTTPS probe (no verification, no client certificate) gets /healthz, and
    a client that verifies as the Ingress's annotations say (the CA of
    Secret yztc-internal-ca, the name proxy-ssl-name) is answered too."""
    _, module, argv, _, env = start(objects, "dev", "gateway", stand_in_secrets, tmp_path, monkeypatch)
    [ingress] = [o for o in objects["dev"] if o["kind"] == "Ingress"]
    server_name = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-ssl-name"]
    ca_file = tmp_path / "internal-ca.pem"
    ca_file.write_text(stand_in_secrets["yztc-internal-ca"]["ca.crt"], encoding="utf-8")
    port = free_port()
    env.update(
        MONGODB_URI=mongodb_uri,
        YZTC_GATEWAY_LISTEN=f"127.0.0.1:{port}",
        YZTC_METRICS_PORT="0",
        YZTC_TRACES_EXPORTER="none",
    )
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("YZTC_", "OTEL_"))} | env
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv], cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith(f"gateway listening on https://127.0.0.1:{port}"), line
        verified = ssl.create_default_context(cafile=str(ca_file))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=False) as kubelet:
                assert kubelet.status == 200
            url = f"https://127.0.0.1:{port}/api/v1/openapi.json"
            async with http.get(url, ssl=verified, server_hostname=server_name) as via_ingress:
                assert via_ingress.status == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
