"""The Secrets of the dev overlay, made locally and printed as manifests:

    .venv/bin/python deploy/k8s/overlays/dev/dev_secrets.py | kubectl apply -f -

Keys and the development PKI are made with the devstack's own helpers and
kept in var/k8s-dev/ (never committed), so a second run prints the same
Secrets instead of new keys that would make stored phone numbers unreadable.
The channel client certificate for trying the channel API through a
port-forward is there too: var/k8s-dev/pki/wechat-demo.pem (and -key.pem).

Production Secrets are not made here: they come from the site's own CA and
key management (docs/runbook.md, "Deploy" and "Rotate keys").
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from devstack import pki, secrets

ROOT = Path(__file__).resolve().parents[4]
NAMESPACE = "yztc-dev"
INGRESS_HOST = "yztc.dev.localhost"
MONGODB_URI = "mongodb://mongodb:27017/yztc"


def _secret(name: str, namespace: str, data: dict[str, str], kind: str = "Opaque") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/instance": "yztc-dev"},
        },
        "type": kind,
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def _tls(folder: Path, common_name: str, *, server: bool) -> dict[str, str]:
    cert, key = pki.issue(folder, common_name, server=server)
    return {
        "ca.crt": (folder / "ca.pem").read_text(),
        "tls.crt": cert.read_text(),
        "tls.key": key.read_text(),
    }


def dev_secrets(state: Path, namespace: str = NAMESPACE) -> list[dict]:
    """Every Secret the dev overlay refers to, from keys kept in `state`."""
    keys, tls = state / "keys", state / "pki"
    app_private, app_public = secrets.rsa_pair(keys, "alipay-app")
    sim_private, sim_public = secrets.rsa_pair(keys, "alipay-sim")
    aes = secrets.symmetric_key(keys, "alipay-aes")
    pki.issue(tls, "wechat-demo")  # for trying the channel API by hand
    return [
        _secret("yztc-mongodb", namespace, {"uri": MONGODB_URI}),
        _secret(
            "yztc-aggregator-keys",
            namespace,
            {
                "phone-keys": json.dumps({"k1": secrets.symmetric_key(keys, "phone-k1")}),
                "hash-key": secrets.symmetric_key(keys, "hash"),
            },
        ),
        _secret("yztc-aggregator-tls", namespace, _tls(tls, "aggregator", server=True), "kubernetes.io/tls"),
        _secret("yztc-gateway-channel-tls", namespace, _tls(tls, "alipay-gateway", server=False), "kubernetes.io/tls"),
        _secret("yztc-ingress-tls", namespace, _tls(tls, INGRESS_HOST, server=True), "kubernetes.io/tls"),
        _secret(
            "yztc-alipay",
            namespace,
            {
                "app-private-key.pem": app_private.read_text(),
                "alipay-public-key.pem": sim_public.read_text(),
                "aes-key": aes,
            },
        ),
        _secret(
            "yztc-sms-notifier",
            namespace,
            {
                # SMPP passwords are at most 8 characters.
                "smpp-password": secrets.symmetric_key(keys, "smpp-password")[:8],
                "data-key": secrets.symmetric_key(keys, "notifier-data-k1"),
                "previous-data-keys": "{}",
            },
        ),
        _secret(
            "yztc-simulators",
            namespace,
            {
                "sim-private-key.pem": sim_private.read_text(),
                "app-public-key.pem": app_public.read_text(),
                "aes-key": aes,
            },
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=ROOT / "var" / "k8s-dev", help="where keys are kept")
    parser.add_argument("--namespace", default=NAMESPACE)
    args = parser.parse_args(argv)
    # JSON is YAML: one document per Secret, for `kubectl apply -f -`.
    for secret in dev_secrets(args.state, args.namespace):
        print("---")
        print(json.dumps(secret, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
