"""The Secrets of the dev overlay, made locally and printed as manifests:

    .venv/bin/python deploy/k8s/overlays/dev/dev_secrets.py | kubectl apply -f -

Keys and the development PKI are made with the devstack's own helpers and
kept in var/k8s-dev/ (never committed), so a second run prints the same
Secrets instead of new keys that would make stored phone numbers unreadable.
The PKI has the two CAs of production: the internal CA (pki/ca.pem) signs one
certificate per service identity (SAN URI spiffe://yztc/service/<name>, one
Secret each); the channels' CA (pki/channels-ca.pem, Secret
yztc-channels-ca) signs channel certificates only. The channel client
certificate for trying the channel API through a port-forward is there too:
var/k8s-dev/pki/wechat-demo.pem (and -key.pem), verifying the aggregator
with pki/ca.pem. The ingress certificate comes from a third, dev-only CA.

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
CONNECTORS = ROOT / "deploy" / "k8s" / "base" / "connectors"
NAMESPACE = "yztc-dev"
INGRESS_HOST = "yztc.dev.localhost"
MONGODB_URI = "mongodb://mongodb:27017/yztc"
# The services with a database user of their own (deploy/mongodb/roles.js).
MONGODB_SERVICES = ("gateway", "aggregator", "sms-notifier")


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


def _tls(folder: Path, cert: Path, key: Path, ca_name: str) -> dict[str, str]:
    return {
        "ca.crt": (folder / f"{ca_name}.pem").read_text(),
        "tls.crt": cert.read_text(),
        "tls.key": key.read_text(),
    }


def service_tls(folder: Path, name: str) -> dict[str, str]:
    """Secret yztc-<name>-tls: the service's internal identity and the internal CA."""
    return _tls(folder, *pki.issue_service(folder, name), pki.INTERNAL_CA)


def connector_names() -> list[str]:
    """connector-<id> for every instance folder of base/connectors."""
    return sorted(f"connector-{p.name}" for p in CONNECTORS.iterdir() if p.is_dir() and p.name != "template")


def dev_secrets(state: Path, namespace: str = NAMESPACE) -> list[dict]:
    """Every Secret the dev overlay refers to, from keys kept in `state`."""
    keys, tls = state / "keys", state / "pki"
    app_private, app_public = secrets.rsa_pair(keys, "alipay-app")
    sim_private, sim_public = secrets.rsa_pair(keys, "alipay-sim")
    aes = secrets.symmetric_key(keys, "alipay-aes")
    pki.issue_channel(tls, "wechat-demo")  # for trying the channel API by hand (makes the channels' CA)
    ingress_ca = "ingress-ca"  # dev only: not a CA the services trust
    enterprises = [name.removeprefix("connector-") for name in connector_names()]
    ingress = _tls(tls, *pki.issue(tls, INGRESS_HOST, server=True, ca_name=ingress_ca), ingress_ca)
    return [
        # One per service (M5); the dev MongoDB has no users, so the same URI.
        *(_secret(f"yztc-mongodb-{s}", namespace, {"uri": MONGODB_URI}) for s in MONGODB_SERVICES),
        _secret(
            "yztc-aggregator-keys",
            namespace,
            {
                "phone-keys": json.dumps({"k1": secrets.symmetric_key(keys, "phone-k1")}),
                "hash-keys": json.dumps({"h1": secrets.symmetric_key(keys, "hash-h1")}),
                "hash-key-id": "h1",
            },
        ),
        # One certificate Secret per service identity, from the internal CA.
        *(
            _secret(f"yztc-{name}-tls", namespace, service_tls(tls, name), "kubernetes.io/tls")
            for name in ("aggregator", "gateway", "sms-notifier", "otel-collector", *connector_names())
        ),
        # The channels' CA, apart: the aggregator's channel port trusts it alone.
        _secret("yztc-channels-ca", namespace, {"ca.crt": (tls / f"{pki.CHANNELS_CA}.pem").read_text()}),
        # The internal CA alone (no key): the ingress controller verifies the gateway by it.
        _secret("yztc-internal-ca", namespace, {"ca.crt": (tls / f"{pki.INTERNAL_CA}.pem").read_text()}),
        _secret("yztc-ingress-tls", namespace, ingress, "kubernetes.io/tls"),
        _secret(
            "yztc-gateway-keys",
            namespace,
            {"hash-keys": json.dumps({"h1": secrets.symmetric_key(keys, "gateway-hash-h1")}), "hash-key-id": "h1"},
        ),
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
                # What the simulated enterprises accept: each connector's public key.
                "partner-keys.json": secrets.partner_keys_file(keys, enterprises).read_text(),
            },
        ),
        # Each connector's Ed25519 request-signing key (docs/partner-api.md).
        *(
            _secret(f"yztc-connector-{e}-partner", namespace, {"key.pem": secrets.partner_key(keys, e).read_text()})
            for e in enterprises
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
