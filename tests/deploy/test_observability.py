"""Alerts and the collector: every alert is explained in the runbook and
names metrics the services export; the collector's pipelines are whole,
listen where the manifests say, and mask phone numbers."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.conftest import K8S, ROOT
from tests.deploy.model import named, workloads

RULES = K8S / "base" / "alerts.rules.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
COLLECTOR_CONFIGS = {
    "prod": K8S / "base" / "otel-collector-config.yaml",
    "dev": K8S / "overlays" / "dev" / "collector-dev.yaml",
}


def alert_rules() -> list[dict]:
    """The alerting rules (the file also holds the objectives' recording rules)."""
    return [
        rule
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def exported_metric_names() -> set[str]:
    """The aggregator's and the notifier's instruments (and the gauges they
    take from yztc/database_up.py and, with every service,
    yztc/certificate_expiry.py) as the OpenTelemetry
    Prometheus exporter names them: dots to underscores, the unit "s" as
    _seconds (tests/e2e/test_metrics_in_use.py reads the real pages)."""
    names = set()
    for path in (
        "aggregator/metrics.py",
        "sms_notifier/metrics.py",
        "yztc/database_up.py",
        "yztc/certificate_expiry.py",
    ):
        source = (ROOT / path).read_text(encoding="utf-8")
        for call in re.finditer(r'create_\w+\(\s*"(yztc\.[a-z_.]+)"(.*?)\)', source, re.S):
            name = call[1].replace(".", "_")
            names.add(name + ("_seconds" if 'unit="s"' in call[2] else ""))
    return names


def test_every_alert_is_complete_and_in_the_runbook() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### (\w+)$", runbook, re.M))
    rules = alert_rules()
    assert len(rules) >= 6
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["runbook"] == f"docs/runbook.md#{name.lower()}"
        assert name in headings, f"docs/runbook.md has no '### {name}'"


def test_alerts_use_metrics_the_services_export() -> None:
    exported = exported_metric_names()
    assert "yztc_queries_oldest_unfinished_age_seconds" in exported
    assert "yztc_sms_smsc_bound" in exported
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            for metric in re.findall(r"\byztc_[a-z_]+", rule["expr"]):
                base = re.sub(r"_(total|count|sum|bucket)$", "", metric)
                assert base in exported, f"{rule.get('alert') or rule['record']}: {metric} is not exported"


def test_the_rules_ship_in_a_configmap(objects: dict[str, list[dict]]) -> None:
    for overlay in objects.values():
        rules = named(
            overlay,
            "ConfigMap",
            next(o["metadata"]["name"] for o in overlay if o["metadata"]["name"].startswith("yztc-alert-rules")),
        )
        assert yaml.safe_load(rules["data"]["yztc.rules.yaml"])["groups"]


@pytest.mark.parametrize("overlay", COLLECTOR_CONFIGS)
def test_collector_pipeline(objects: dict[str, list[dict]], overlay: str) -> None:
    config = yaml.safe_load(COLLECTOR_CONFIGS[overlay].read_text(encoding="utf-8"))
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], f"{component} is used but not configured"
    assert config["service"]["pipelines"]["traces"]["processors"][0] == "memory_limiter"
    (collector,) = [w for w in workloads(objects[overlay]) if w.name == "otel-collector"]
    ports = collector.ports()
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318") and ports[4318] == "otlp-http"
    assert config["extensions"]["health_check"]["endpoint"].endswith(":13133") and ports[13133] == "health"
    # The configuration the Deployment mounts is this file.
    mounted = named(objects[overlay], "ConfigMap", collector.pod["volumes"][0]["configMap"]["name"])
    assert yaml.safe_load(mounted["data"]["collector.yaml"]) == config
    # Spans come in mutual TLS only: the collector's own certificate, and
    # clients of the internal CA, from its Secret as mounted.
    tls = config["receivers"]["otlp"]["protocols"]["http"]["tls"]
    volumes = {v["name"]: v for v in collector.pod["volumes"]}
    [mount] = [m for c in collector.containers for m in c["volumeMounts"] if m["name"] == "tls"]
    assert volumes["tls"]["secret"]["secretName"] == "yztc-otel-collector-tls"
    files = {item["path"] for item in volumes["tls"]["secret"]["items"]}
    for key, file in (("cert_file", "tls.crt"), ("key_file", "tls.key"), ("client_ca_file", "ca.crt")):
        assert tls[key] == f"{mount['mountPath']}/{file}" and file in files, key


@pytest.mark.parametrize("overlay", COLLECTOR_CONFIGS)
def test_collector_masks_phone_numbers_and_keeps_ids(overlay: str) -> None:
    config = yaml.safe_load(COLLECTOR_CONFIGS[overlay].read_text(encoding="utf-8"))
    (pattern,) = config["processors"]["redaction"]["blocked_values"]
    blocked = re.compile(pattern)  # the subset of RE2 both engines read alike
    for value in ("13800138000", "phone=13800138000&x=1", "tel:+8613800138000"):
        assert blocked.search(value), value
    for value in ("q-5f13800138000a9e", "0f13800138000bc1d2e3f4a5b6c7d8e9", "2026-11-29T10:00:00Z"):
        assert not blocked.search(value), value
