"""The policies every workload of both overlays holds to, checked on the
built manifests: probes, resources, security context, a PodDisruptionBudget,
spreading, and NetworkPolicies that admit its callers and no one else."""

from __future__ import annotations

import pytest

from gateway import h5_page
from tests.deploy.expected import CASES, IDS, SERVICES, WORKLOADS, expected_callers, expected_egress
from tests.deploy.model import (
    Workload,
    egress_allows,
    ingress_admitted,
    named,
    of_kind,
    probe_command,
    selects,
    workloads,
)


def workload(objects: dict[str, list[dict]], overlay: str, name: str) -> Workload:
    found = [w for w in workloads(objects[overlay]) if w.name == name]
    assert len(found) == 1, f"{overlay}: workload {name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("overlay", WORKLOADS)
def test_exactly_the_expected_workloads(objects: dict[str, list[dict]], overlay: str) -> None:
    assert sorted(w.name for w in workloads(objects[overlay])) == sorted(WORKLOADS[overlay])


# --- probes ------------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=IDS)
def test_probes(objects: dict[str, list[dict]], overlay: str, name: str) -> None:
    w = workload(objects, overlay, name)
    for c in w.containers:
        ready, alive = c.get("readinessProbe"), c.get("livenessProbe")
        assert ready and alive, f"{c['name']}: readiness and liveness probes"
        assert ready != alive, f"{c['name']}: liveness must not be the readiness probe"
        for probe in (ready, alive, c.get("startupProbe")):
            if probe is None:
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                if handler in probe:
                    w.port_number(probe[handler]["port"])  # a declared port
    if name in SERVICES:
        c = w.containers[0]
        assert "startupProbe" in c, "Python services get a start-up allowance"
        if name == "gateway":
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            # Every gRPC port demands mutual TLS: grpc-health-probe with the
            # pod's own certificate (test_internal_tls checks its flags).
            command = probe_command(c["readinessProbe"], {})
            assert command[0] == "grpc-health-probe" and "-tls" in command
            assert any(arg.startswith("-tls-client-cert=") for arg in command)
        # Liveness never depends on the database: health goes NOT_SERVING without it.
        assert "grpc" not in c["livenessProbe"] and "exec" not in c["livenessProbe"]


# --- resources ---------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=IDS)
def test_resources(objects: dict[str, list[dict]], overlay: str, name: str) -> None:
    for c in workload(objects, overlay, name).containers:
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            for what in ("cpu", "memory", "ephemeral-storage"):
                assert what in resources.get(kind, {}), f"{c['name']}: {kind}.{what}"
        # No overcommit of memory: an OOM kill is the container's own doing.
        assert resources["requests"]["memory"] == resources["limits"]["memory"]


# --- security context ----------------------------------------------------------


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=IDS)
def test_security_context(objects: dict[str, list[dict]], overlay: str, name: str) -> None:
    w = workload(objects, overlay, name)
    pod = w.pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False, "no API token in pods that never call the API"
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in v for v in pod.get("volumes", []))
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000 and sc["runAsGroup"] >= 10000
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["privileged"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        tag = c["image"].rsplit("/", 1)[-1]
        assert ":" in tag and not tag.endswith(":latest"), f"{c['image']}: pinned release"


# --- availability ---------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=IDS)
def test_pod_disruption_budget(objects: dict[str, list[dict]], overlay: str, name: str) -> None:
    w = workload(objects, overlay, name)
    budgets = [p for p in of_kind(objects[overlay], "PodDisruptionBudget") if selects(p["spec"]["selector"], w.labels)]
    assert len(budgets) == 1, f"{len(budgets)} PodDisruptionBudgets select {name}"
    assert "maxUnavailable" in budgets[0]["spec"], "maxUnavailable never blocks a drain, whatever the replicas"
    # The budget selects this workload's pods only.
    others = [
        x.name
        for x in workloads(objects[overlay])
        if x.name != name and selects(budgets[0]["spec"]["selector"], x.labels)
    ]
    assert not others


@pytest.mark.parametrize(
    ("overlay", "name"),
    [c for c in CASES if c[1] in SERVICES + ("otel-collector",)],
    ids=[i for c, i in zip(CASES, IDS, strict=False) if c[1] in SERVICES + ("otel-collector",)],
)
def test_spread_across_zones_and_nodes(objects: dict[str, list[dict]], overlay: str, name: str) -> None:
    w = workload(objects, overlay, name)
    zones = [t for t in w.pod.get("topologySpreadConstraints", []) if t["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zones and selects(zones[0]["labelSelector"], w.labels)
    terms = w.pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        and selects(t["podAffinityTerm"]["labelSelector"], w.labels)
        for t in terms
    )


AUTOSCALED = ("gateway", "aggregator", "sms-notifier")


@pytest.mark.parametrize("overlay", WORKLOADS)
@pytest.mark.parametrize("name", AUTOSCALED)
def test_horizontal_pod_autoscaler(objects: dict[str, list[dict]], overlay: str, name: str) -> None:
    hpa = named(objects[overlay], "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert "replicas" not in workload(objects, overlay, name).spec, "the HPA owns the count"
    if overlay == "prod":
        assert hpa["spec"]["minReplicas"] >= (3 if name in ("gateway", "aggregator") else 2)


@pytest.mark.parametrize("name", [n for n in WORKLOADS["prod"] if n not in AUTOSCALED])
def test_prod_runs_more_than_one_of_everything(objects: dict[str, list[dict]], name: str) -> None:
    assert workload(objects, "prod", name).spec["replicas"] >= 2


# --- network ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", WORKLOADS)
def test_default_deny(objects: dict[str, list[dict]], overlay: str) -> None:
    deny = named(objects[overlay], "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert not deny.get("ingress") and not deny.get("egress")


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=IDS)
def test_network_policy_admits_the_callers_and_no_one_else(
    objects: dict[str, list[dict]], overlay: str, name: str
) -> None:
    w = workload(objects, overlay, name)
    admitted = ingress_admitted(objects[overlay], w)
    expected = expected_callers(overlay, name)
    assert set(admitted) == set(expected), "every listening port is accounted for"
    assert admitted == expected


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=IDS)
def test_network_policy_lets_it_reach_what_it_calls(objects: dict[str, list[dict]], overlay: str, name: str) -> None:
    w = workload(objects, overlay, name)
    missing = [
        f"{to}:{port}"
        for to, port in sorted(expected_egress(overlay, name))
        if not egress_allows(objects[overlay], w, to, port)
    ]
    assert not missing, f"{name} cannot reach {missing}"
    assert egress_allows(objects[overlay], w, "ns:kube-system", 53), "DNS"
    # Nothing in the cluster beyond what it calls (the ipBlocks exclude private ranges).
    assert not egress_allows(objects[overlay], w, "ip:10.1.2.3", 443)
    assert not egress_allows(objects[overlay], w, "ip:169.254.169.254", 80), "no cloud metadata"


@pytest.mark.parametrize("overlay", WORKLOADS)
def test_egress_rules_name_their_ports(objects: dict[str, list[dict]], overlay: str) -> None:
    """No rule allows every port to somewhere."""
    for policy in of_kind(objects[overlay], "NetworkPolicy"):
        for rule in policy["spec"].get("egress") or []:
            assert rule.get("ports"), f"{policy['metadata']['name']}: an egress rule without ports"


# --- services -----------------------------------------------------------------


@pytest.mark.parametrize("overlay", WORKLOADS)
def test_each_service_targets_one_workload_on_declared_ports(objects: dict[str, list[dict]], overlay: str) -> None:
    ws = workloads(objects[overlay])
    for service in of_kind(objects[overlay], "Service"):
        targets = [w for w in ws if selects({"matchLabels": service["spec"]["selector"]}, w.labels)]
        assert len(targets) == 1, f"Service {service['metadata']['name']} selects {[w.name for w in targets]}"
        for port in service["spec"]["ports"]:
            targets[0].port_number(port["targetPort"])


@pytest.mark.parametrize("overlay", WORKLOADS)
def test_the_ingress_serves_the_api_over_tls_only(objects: dict[str, list[dict]], overlay: str) -> None:
    ingresses = of_kind(objects[overlay], "Ingress")
    assert len(ingresses) == 1
    spec = ingresses[0]["spec"]
    hosts = [rule["host"] for rule in spec["rules"]]
    assert spec["tls"] and set(hosts) <= set(spec["tls"][0]["hosts"])
    assert not any(h.endswith(".invalid") for h in hosts), "the overlay names its host"
    for rule in spec["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "gateway"
            assert path["backend"]["service"]["port"] == {"name": "https"}


@pytest.mark.parametrize("overlay", WORKLOADS)
def test_the_ingress_reaches_the_gateway_over_verified_https(objects: dict[str, list[dict]], overlay: str) -> None:
    """Citizens' data never crosses the pod network in clear: the controller
    speaks HTTPS to the gateway and verifies its certificate by the internal
    CA, from a Secret of this overlay's namespace holding the CA alone; the
    gateway serves HTTPS on that port and its probes use it."""
    [ingress] = of_kind(objects[overlay], "Ingress")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "backend-protocol"] == "HTTPS"
    assert notes[prefix + "proxy-ssl-verify"] == "on"
    assert notes[prefix + "proxy-ssl-name"] == "gateway"
    assert notes[prefix + "proxy-ssl-secret"] == f"{ingress['metadata']['namespace']}/yztc-internal-ca"
    [gateway] = [w for w in workloads(objects[overlay]) if w.name == "gateway"]
    container = gateway.containers[0]
    assert [p["name"] for p in container["ports"]] == ["https", "metrics"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
        assert container[probe]["httpGet"]["port"] == "https", probe


def _routed(paths: list[dict], request_path: str) -> bool:
    """Whether an Ingress rule's `paths` take `request_path` (Kubernetes'
    matching: Exact is equality; Prefix matches whole path elements)."""
    for p in paths:
        if p["pathType"] == "Exact" and request_path == p["path"]:
            return True
        if p["pathType"] == "Prefix":
            prefix = p["path"].rstrip("/").split("/")
            if request_path.rstrip("/").split("/")[: len(prefix)] == prefix:
                return True
    return False


@pytest.mark.parametrize("overlay", WORKLOADS)
def test_the_ingress_takes_the_api_and_the_h5_page_and_nothing_else(
    objects: dict[str, list[dict]], overlay: str
) -> None:
    """The citizen's H5 page (CONTRACT: GET /, its login, callback and
    assets under /h5/) comes through the ingress as the JSON API does; the
    health endpoints stay inside (kubelet probes only)."""
    [ingress] = of_kind(objects[overlay], "Ingress")
    [rule] = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    page_paths = [path.replace("{name}", "app.js") for _, path, _ in h5_page.ROUTES]
    for public in ("/api/v1/sessions", "/api/v1/queries/q-1", "/api/v1/openapi.json", *page_paths):
        assert _routed(paths, public), public
    for inside in ("/healthz", "/readyz", "/metrics", "/apix", "/h5x", "/anything"):
        assert not _routed(paths, inside), inside
