"""M9: per-client limits rested on X-Forwarded-For, believed from all of
10.0.0.0/8 and from an ingress configured outside the repository. Now the
gateway believes X-Forwarded-For from no one unless told (its default), the
manifests name the ingress controller's pod CIDR only, and the controller's
settings live in deploy/k8s/ingress-nginx (tests/deploy/test_ingress_controller.py).

Here, a real `python -m gateway` on a real socket: a client that writes a
different X-Forwarded-For on every request still has one bucket, its own
address; only from a configured proxy is the header believed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.security.services import clean_env, internal_identity, service_env, start_until, stop


def _gateway_env(tmp_path: Path, mongodb_uri: str, **extra: str) -> dict[str, str]:
    env = service_env("gateway", tmp_path / "keys", mongodb_uri)
    env.update(internal_identity(tmp_path / "pki", "gateway"))
    env.update(YZTC_GATEWAY_LIMIT_IP_LOGINS="3/600", YZTC_GATEWAY_ALIPAY_TIMEOUT_SECONDS="0.5", **extra)
    return clean_env(**env)


def _login(listen: str, forwarded_for: str) -> int:
    request = urllib.request.Request(
        f"http://{listen}/api/v1/sessions",
        data=json.dumps({"auth_code": "made-up"}).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_clients_forwarded_for_is_ignored_by_default(tmp_path: Path, mongodb_uri: str) -> None:
    env = _gateway_env(tmp_path, mongodb_uri)
    assert "YZTC_GATEWAY_TRUSTED_PROXIES" not in env
    proc = start_until(["gateway"], env, "gateway listening")
    try:
        # The review's loop: a new address in X-Forwarded-For on every request.
        statuses = [_login(env["YZTC_GATEWAY_LISTEN"], f"198.51.100.{i}") for i in range(5)]
    finally:
        stop(proc)
    # Alipay is at a dead port (503) until the peer's own login limit is used up.
    assert statuses == [503, 503, 503, 429, 429]


def test_only_a_configured_proxy_is_believed(tmp_path: Path, mongodb_uri: str) -> None:
    env = _gateway_env(tmp_path, mongodb_uri, YZTC_GATEWAY_TRUSTED_PROXIES='["127.0.0.1/32"]')
    proc = start_until(["gateway"], env, "gateway listening")
    try:
        listen = env["YZTC_GATEWAY_LISTEN"]
        spread = [_login(listen, f"198.51.100.{i}") for i in range(5)]
        # A client's own header is read right to left: the proxy's entry wins.
        same = [_login(listen, f"203.0.113.{i}, 192.0.2.7") for i in range(4)]
    finally:
        stop(proc)
    assert spread == [503] * 5  # each its own address, as the trusted proxy said
    assert same == [503, 503, 503, 429]
