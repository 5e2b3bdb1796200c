"""The ingress settings the gateway's per-client limits rest on (review
M9), kept in the repository: deploy/k8s/ingress-nginx builds, sets what
makes X-Forwarded-For the client's own address, keeps the source address
at the load balancer; the gateway believes X-Forwarded-For from the
controller's pod CIDR only; the Ingress carries a rate-limit backstop."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

from tests.deploy.conftest import K8S
from tests.deploy.model import container_env, named, workloads


def _controller(kustomize: Path) -> list[dict]:
    done = subprocess.run(
        [str(kustomize), "build", str(K8S / "ingress-nginx")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_the_controller_never_believes_a_clients_forwarded_headers(kustomize: Path) -> None:
    objs = _controller(kustomize)
    for obj in objs:
        kubernetes_validate.validate(obj, "1.33", strict=True)
        assert obj["metadata"]["namespace"] == "ingress-nginx"
    settings = named(objs, "ConfigMap", "ingress-nginx-controller")["data"]
    assert settings["use-forwarded-headers"] == "false"
    assert settings["compute-full-forwarded-for"] == "false"
    assert settings["enable-real-ip"] == "false"
    assert settings.get("use-proxy-protocol", "false") == "false" or "proxy-real-ip-cidr" in settings
    assert "0.0.0.0/0" not in settings.get("proxy-real-ip-cidr", "")


def test_the_load_balancer_keeps_the_source_address(kustomize: Path) -> None:
    service = named(_controller(kustomize), "Service", "ingress-nginx-controller")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"


def test_the_gateway_trusts_the_controllers_pods_only(
    objects: dict[str, list[dict]], stand_in_secrets: dict[str, dict[str, str]]
) -> None:
    for overlay, objs in objects.items():
        (gateway,) = [w for w in workloads(objs) if w.name == "gateway"]
        env = container_env(objs, gateway, gateway.containers[0], stand_in_secrets)
        proxies = [ipaddress.ip_network(c) for c in json.loads(env["YZTC_GATEWAY_TRUSTED_PROXIES"])]
        assert proxies, overlay
        for network in proxies:
            assert network.is_private, (overlay, network)
            # A pod CIDR of its own, not the pod network nor 10/8.
            assert network.prefixlen >= (20 if network.version == 4 else 108), (overlay, network)
            assert not network.supernet_of(ipaddress.ip_network("10.0.0.0/16")), (overlay, network)


def test_the_ingress_has_a_rate_limit_backstop(objects: dict[str, list[dict]]) -> None:
    for overlay, objs in objects.items():
        ingresses = [o for o in objs if o["kind"] == "Ingress"]
        assert ingresses, overlay
        for ingress in ingresses:
            annotations = ingress["metadata"].get("annotations", {})
            rps = int(annotations["nginx.ingress.kubernetes.io/limit-rps"])
            # Below a flood, above the gateway's own 600/min per address.
            assert 10 <= rps <= 100, (overlay, rps)
