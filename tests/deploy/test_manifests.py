"""Both overlays build, every object is valid against Kubernetes' own schemas
(strict: no unknown fields), and kube-score finds nothing. Offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy.conftest import OVERLAYS, ROOT
from tests.deploy.model import config_map, selects, workloads

# The oldest Kubernetes we support: native gRPC probes, the preStop sleep
# action and matchLabelKeys are all in it.
KUBERNETES_VERSION = "1.33"

# kube-score's optional checks we hold ourselves to, on top of its defaults.
# Not "CPU requests equal limits": the HPAs scale on CPU use relative to the
# request, and a Python process bursts above it at start and in fan-out
# rounds; memory and ephemeral storage requests do equal their limits.
KUBE_SCORE_OPTIONAL = (
    "container-memory-requests-equal-limits",
    "container-ephemeral-storage-request-equals-limit",
    "container-seccomp-profile",
    "container-ports-check",
)
# dev runs one replica of everything on purpose (a one-node cluster).
KUBE_SCORE_OVERLAY_FLAGS = {
    "dev": ["--min-replicas-deployment", "1", "--min-replicas-hpa", "1"],
    "prod": [],
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds(rendered: dict[str, str], overlay: str) -> None:
    assert "kind: Deployment" in rendered[overlay]


# The Prometheus Operator's kinds (components/monitoring): not in Kubernetes'
# schemas; test_alerts.py and test_dashboard.py check what they carry.
OPERATOR_KINDS = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_the_kubernetes_schemas(objects: dict[str, list[dict]], overlay: str) -> None:
    errors = []
    for obj in objects[overlay]:
        if (obj["apiVersion"], obj["kind"]) in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}")
    assert not errors, "\n".join(errors)


def test_the_validator_is_strict() -> None:
    """Guard against a validator that passes everything."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kube_score_finds_nothing(kube_score: Path, rendered: dict[str, str], overlay: str) -> None:
    """Findings are fixed, or justified inline with a kube-score/ignore
    annotation beside a comment saying why."""
    flags = [arg for check in KUBE_SCORE_OPTIONAL for arg in ("--enable-optional-test", check)]
    done = subprocess.run(
        [
            str(kube_score),
            "score",
            "--kubernetes-version",
            f"v{KUBERNETES_VERSION}",
            "--output-format",
            "json",
            *flags,
            *KUBE_SCORE_OVERLAY_FLAGS[overlay],
            "-",
        ],
        input=rendered[overlay],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout, done.stderr
    findings = []
    scored = 0
    for obj in json.loads(done.stdout):
        for check in obj["checks"]:
            if check["skipped"]:
                continue
            scored += 1
            if check["grade"] < 10:
                comments = "; ".join(
                    f"{c.get('summary', '')} {c.get('description', '')}".strip() for c in check.get("comments") or []
                )
                findings.append(f"{obj['object_name']}: {check['check']['id']}: {comments}")
    assert scored > 100, "kube-score scored almost nothing"
    assert not findings, "\n".join(findings)


def test_only_the_operator_kinds_are_custom(objects: dict[str, list[dict]]) -> None:
    """Anything else of a custom API group would escape the schema check."""
    custom = {
        (o["apiVersion"], o["kind"])
        for objs in objects.values()
        for o in objs
        if "." in o["apiVersion"].split("/")[0] and not o["apiVersion"].split("/")[0].endswith(".k8s.io")
    }
    assert custom == OPERATOR_KINDS


def test_the_pod_monitor_scrapes_every_metrics_port(objects: dict[str, list[dict]]) -> None:
    """prod's PodMonitor selects every pod with a port named "metrics" (the
    services' 9464, the collector's 8888), and the NetworkPolicies admit the
    Prometheus namespace on each (test_policies)."""
    prod = objects["prod"]
    (monitor,) = [o for o in prod if o["kind"] == "PodMonitor"]
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    assert monitor["metadata"]["labels"]["release"]
    with_metrics = [w for w in workloads(prod) if "metrics" in w.ports().values()]
    assert len(with_metrics) >= 4
    for w in with_metrics:
        assert selects(monitor["spec"]["selector"], w.labels), w.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configuration_files_are_config_s_own(objects: dict[str, list[dict]], overlay: str) -> None:
    """ConfigMaps yztc-config, yztc-channels and yztc-internal-revocations
    carry config/*.json byte for byte (built with kustomize's default load
    restrictor: config/kustomization.yaml); prod ships no development
    channels file."""
    (config_map,) = [
        o for o in objects[overlay] if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("yztc-config-")
    ]
    (channels,) = [o for o in objects[overlay] if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "yztc-channels"]
    files = {path.name: path.read_text(encoding="utf-8") for path in (ROOT / "config").glob("*.json")}
    assert len(files) == 5
    assert config_map["data"] == {k: files[k] for k in ("enterprises.json", "number_segments.json")}
    shipped = ("channels.prod.json",) if overlay == "prod" else ("channels.json", "channels.prod.json")
    assert channels["data"] == {k: files[k] for k in shipped}
    (revocations,) = [
        o for o in objects[overlay] if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "yztc-internal-revocations"
    ]
    assert revocations["data"] == {"internal_revocations.json": files["internal_revocations.json"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_servers_of_internal_callers_read_the_revocation_list_as_it_changes(
    objects: dict[str, list[dict]], overlay: str
) -> None:
    """The connectors and the notifier refuse revoked internal certificates
    (yztc.revoked_certificates): YZTC_TLS_REVOKED_SERIALS_FILE names the
    file in ConfigMap yztc-internal-revocations, mounted as a directory
    (never subPath, which the kubelet does not update)."""
    servers = [w for w in workloads(objects[overlay]) if w.name == "sms-notifier" or w.name.startswith("connector-")]
    assert len(servers) == 13
    for w in servers:
        env = {
            k: v
            for source in w.containers[0]["envFrom"]
            for k, v in config_map(objects[overlay], source["configMapRef"]["name"]).items()
        }
        path = Path(env["YZTC_TLS_REVOKED_SERIALS_FILE"])
        [volume] = [v for v in w.pod["volumes"] if v.get("configMap", {}).get("name") == "yztc-internal-revocations"]
        [mount] = [m for c in w.containers for m in c["volumeMounts"] if m["name"] == volume["name"]]
        assert "subPath" not in mount and path.parent == Path(mount["mountPath"]), w.name
        assert path.name == "internal_revocations.json", w.name


def test_no_copies_of_the_configuration_files_under_deploy() -> None:
    names = {path.name for path in (ROOT / "config").glob("*.json")}
    assert not [path for path in (ROOT / "deploy").rglob("*.json") if path.name in names]
