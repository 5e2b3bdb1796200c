"""Internal mutual TLS and channel identity as the manifests deploy them
(issue 13; review H1, M2, M3, I2, L7), checked on both built overlays with
the dev Secrets standing in for the cluster's:

- every gRPC service (aggregator, notifier, connectors) and the gateway, its
  client, gets YZTC_TLS_* from a certificate Secret of its own, whose
  certificate names it (SAN URI spiffe://yztc/service/<name>) and comes from
  the internal CA;
- no probe speaks plaintext gRPC: readiness is grpc-health-probe over TLS
  with the pod's own certificate, checking the server's name;
- the aggregator's channel port trusts the channels' CA, from a Secret of its
  own, never the internal CA;
- the channels file (quotas and revoked serials) is mounted from a ConfigMap
  whose name carries no content hash, without subPath, so that an update
  reaches the running aggregator, which reloads it;
- prod never sets YZTC_DEVELOPMENT and ships no development channel.
"""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.deploy.expected import CONNECTORS, SERVICES
from tests.deploy.model import Workload, container_env, file_source, named, probe_command, workloads

OVERLAYS = ("dev", "prod")
TLS_VARIABLES = ("YZTC_TLS_CA", "YZTC_TLS_CERT", "YZTC_TLS_KEY")
# The gRPC servers among the services, and the port their health answers on
# (the aggregator's: the internal one; its public port admits channels only).
GRPC_SERVERS = ("aggregator", "sms-notifier", *CONNECTORS)
HEALTH_PORT = {"aggregator": "grpc-internal"}
CHANNELS_CA_SECRET = "yztc-channels-ca"
DEVELOPMENT_CHANNELS = {"wechat-demo", "local-dev"}
CASES = [(overlay, name) for overlay in OVERLAYS for name in SERVICES]
IDS = [f"{overlay}-{name}" for overlay, name in CASES]


def workload(objs: list[dict], name: str) -> Workload:
    (w,) = [w for w in workloads(objs) if w.name == name]
    return w


def certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def san(cert: x509.Certificate, kind: type) -> list:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return names.get_values_for_type(kind)


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """The CA's key made the certificate's signature (not only a matching issuer name)."""
    if cert.issuer != ca.subject:
        return False
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    try:
        public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except Exception:
        return False
    return True


def internal_ca(stand_in_secrets: dict[str, dict[str, str]]) -> x509.Certificate:
    return certificate(stand_in_secrets["yztc-aggregator-tls"]["ca.crt"])


def channels_ca(stand_in_secrets: dict[str, dict[str, str]]) -> x509.Certificate:
    return certificate(stand_in_secrets[CHANNELS_CA_SECRET]["ca.crt"])


@pytest.mark.parametrize(("overlay", "name"), CASES, ids=IDS)
def test_every_service_has_its_own_internal_identity(objects, stand_in_secrets, overlay: str, name: str) -> None:
    """YZTC_TLS_CA/CERT/KEY each name a file of Secret yztc-<name>-tls (one
    credential per service), whose certificate is the service's identity
    from the internal CA, good for serving and for calling."""
    objs = objects[overlay]
    w = workload(objs, name)
    c = w.containers[0]
    env = container_env(objs, w, c, stand_in_secrets)
    assert all(env.get(var) for var in TLS_VARIABLES), f"{name}: no internal mutual TLS"
    files = {}
    for var, key in zip(TLS_VARIABLES, ("ca.crt", "tls.crt", "tls.key"), strict=True):
        source = file_source(w, c, env[var])
        assert source is not None, f"{name}: {var}={env[var]} is in no Secret volume"
        kind, secret, found_key, mount = source
        assert (kind, secret, found_key) == ("secret", f"yztc-{name}-tls", key), f"{name}: {var} from {source[:3]}"
        assert mount.get("readOnly") is True
        files[key] = stand_in_secrets[secret][key]
    cert, ca = certificate(files["tls.crt"]), certificate(files["ca.crt"])
    assert ca == internal_ca(stand_in_secrets), f"{name}: trusts a CA other than the internal one"
    assert ca != channels_ca(stand_in_secrets)
    assert signed_by(cert, ca)
    assert san(cert, x509.UniformResourceIdentifier) == [f"spiffe://yztc/service/{name}"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usages
    if name in GRPC_SERVERS:
        assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usages
        # Its callers dial it by its Service's name: the certificate names it.
        assert name in san(cert, x509.DNSName)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_certificate_secret_per_service(objects, overlay: str) -> None:
    """No two workloads mount the same certificate Secret: a leaked key is
    one service's, and revoking it touches no other."""
    owners: dict[str, set[str]] = {}
    for w in workloads(objects[overlay]):
        for volume in w.pod.get("volumes", []):
            if "secret" in volume and volume["secret"]["secretName"].endswith("-tls"):
                owners.setdefault(volume["secret"]["secretName"], set()).add(w.name)
    shared = {secret: names for secret, names in owners.items() if len(names) > 1}
    assert not shared
    assert {f"yztc-{name}-tls" for name in SERVICES} <= owners.keys()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_probe_speaks_plaintext_grpc(objects, overlay: str) -> None:
    """The kubelet's native gRPC probe is plaintext, and every gRPC port
    demands mutual TLS: no workload uses it."""
    for w in workloads(objects[overlay]):
        for c in [*w.pod.get("initContainers", []), *w.containers]:
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert "grpc" not in c.get(kind, {}), f"{w.name}: {kind} is a plaintext gRPC probe"


@pytest.mark.parametrize(("overlay", "name"), [(o, n) for o in OVERLAYS for n in GRPC_SERVERS])
def test_readiness_is_grpc_health_probe_over_mutual_tls(objects, stand_in_secrets, overlay: str, name: str) -> None:
    """grpc-health-probe on the pod's own health port with -tls, the pod's
    own CA, certificate and key (the files YZTC_TLS_* name), and a server
    name the server's certificate carries: never -tls-no-verify."""
    objs = objects[overlay]
    w = workload(objs, name)
    c = w.containers[0]
    env = container_env(objs, w, c, stand_in_secrets)
    argv = probe_command(c["readinessProbe"], env)
    assert argv[0] == "grpc-health-probe", argv
    flags = dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in argv[1:])
    assert "-tls" in flags and "-tls-no-verify" not in flags
    assert flags["-addr"] == f"127.0.0.1:{w.port_number(HEALTH_PORT.get(name, 'grpc'))}"
    assert flags["-tls-ca-cert"] == env["YZTC_TLS_CA"]
    assert flags["-tls-client-cert"] == env["YZTC_TLS_CERT"]
    assert flags["-tls-client-key"] == env["YZTC_TLS_KEY"]
    cert = certificate(stand_in_secrets[f"yztc-{name}-tls"]["tls.crt"])
    assert flags["-tls-server-name"] == name and name in san(cert, x509.DNSName)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_channel_port_trusts_the_channels_ca_only(objects, stand_in_secrets, overlay: str) -> None:
    """YZTC_AGGREGATOR_CHANNELS_CA is Secret yztc-channels-ca's, not an
    internal certificate Secret's; the two CAs differ and neither signed the
    other's certificates; no other workload mounts the channels' CA."""
    objs = objects[overlay]
    w = workload(objs, "aggregator")
    c = w.containers[0]
    env = container_env(objs, w, c, stand_in_secrets)
    path = env.get("YZTC_AGGREGATOR_CHANNELS_CA")
    assert path, "the channel port needs its own CA"
    assert path != env["YZTC_TLS_CA"]
    source = file_source(w, c, path)
    assert source is not None and source[:3] == ("secret", CHANNELS_CA_SECRET, "ca.crt"), source
    assert not source[1].endswith("-tls"), "an internal certificate Secret mounted as the channel CA"
    internal, channels = internal_ca(stand_in_secrets), channels_ca(stand_in_secrets)
    assert internal != channels and internal.subject != channels.subject
    for name in SERVICES:
        service = certificate(stand_in_secrets[f"yztc-{name}-tls"]["tls.crt"])
        assert not signed_by(service, channels), f"the channels' CA signed {name}'s certificate"
    for other in workloads(objs):
        for volume in other.pod.get("volumes", []):
            if volume.get("secret", {}).get("secretName") == CHANNELS_CA_SECRET:
                assert other.name == "aggregator", f"{other.name} mounts the channels' CA"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_channels_file_reloads_without_a_restart(objects, stand_in_secrets, overlay: str) -> None:
    """The channels file (its revoked_serials the deny-list) comes from a
    ConfigMap mounted as a directory (a subPath mount never sees updates)
    whose name has no content hash (an applied change updates it in place
    instead of making a new ConfigMap and rolling the pods)."""
    objs = objects[overlay]
    w = workload(objs, "aggregator")
    c = w.containers[0]
    env = container_env(objs, w, c, stand_in_secrets)
    source = file_source(w, c, env["YZTC_AGGREGATOR_CHANNELS_FILE"])
    assert source is not None, "the channels file is in no ConfigMap volume"
    kind, name, key, mount = source
    assert kind == "configMap" and name == "yztc-channels"
    assert "subPath" not in mount and "subPathExpr" not in mount
    config_map = named(objs, "ConfigMap", name)  # the exact name: generated without a hash suffix
    document = json.loads(config_map["data"][key])
    assert isinstance(document["revoked_serials"], list)
    for other in workloads(objs):
        volumes = {v["name"] for v in other.pod.get("volumes", []) if v.get("configMap", {}).get("name") == name}
        for container in [*other.pod.get("initContainers", []), *other.containers]:
            for m in container.get("volumeMounts", []):
                assert not (m["name"] in volumes and ("subPath" in m or "subPathExpr" in m)), (
                    f"{other.name}: {name} mounted with subPath"
                )


def test_prod_never_sets_the_development_switch(objects, rendered, stand_in_secrets) -> None:
    """Unset YZTC_DEVELOPMENT is production: every service fails closed.
    dev sets it (the simulators over http://, the demo channel)."""
    assert "YZTC_DEVELOPMENT" not in rendered["prod"]
    for overlay, expected in (("prod", None), ("dev", "1")):
        objs = objects[overlay]
        for name in SERVICES:
            w = workload(objs, name)
            env = container_env(objs, w, w.containers[0], stand_in_secrets)
            assert env.get("YZTC_DEVELOPMENT") == expected, f"{overlay}/{name}"


def test_prod_admits_no_development_channel(objects, stand_in_secrets) -> None:
    """prod's aggregator reads the production channels file, and no file of
    prod's channels ConfigMap names a development channel."""
    objs = objects["prod"]
    w = workload(objs, "aggregator")
    env = container_env(objs, w, w.containers[0], stand_in_secrets)
    assert env["YZTC_AGGREGATOR_CHANNELS_FILE"].endswith("/channels.prod.json")
    for key, text in named(objs, "ConfigMap", "yztc-channels")["data"].items():
        channels = json.loads(text)["channels"]
        assert not DEVELOPMENT_CHANNELS & channels.keys(), key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_calls_the_aggregators_internal_port(objects, stand_in_secrets, overlay: str) -> None:
    """The gateway, an internal-CA identity, dials the port that trusts the
    internal CA (the public one trusts only the channels'), by the name in
    the aggregator's certificate; the Service offers only that port."""
    objs = objects[overlay]
    gateway = workload(objs, "gateway")
    env = container_env(objs, gateway, gateway.containers[0], stand_in_secrets)
    host, _, port = env["YZTC_GATEWAY_AGGREGATOR_TARGET"].rpartition(":")
    aggregator = workload(objs, "aggregator")
    service = named(objs, "Service", host)
    (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    assert aggregator.port_number(service_port["targetPort"]) == aggregator.port_number("grpc-internal")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["grpc-internal"]
    aggregator_env = container_env(objs, aggregator, aggregator.containers[0], stand_in_secrets)
    internal = aggregator_env["YZTC_AGGREGATOR_INTERNAL_LISTEN"].rpartition(":")[2]
    public = aggregator_env["YZTC_AGGREGATOR_LISTEN"].rpartition(":")[2]
    assert int(internal) == aggregator.port_number("grpc-internal") != int(public) == aggregator.port_number("grpc")
    cert = certificate(stand_in_secrets["yztc-aggregator-tls"]["tls.crt"])
    assert env["YZTC_GATEWAY_AGGREGATOR_SERVER_NAME"] in san(cert, x509.DNSName)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_aggregator_reaches_each_server_by_a_name_its_certificate_carries(
    objects, stand_in_secrets, overlay: str
) -> None:
    """The aggregator dials every connector and the notifier over mutual TLS,
    checking the server's certificate against the target's host name: each
    target's host is a DNS name of that server's own certificate, and its
    port the server's TLS port."""
    objs = objects[overlay]
    w = workload(objs, "aggregator")
    env = container_env(objs, w, w.containers[0], stand_in_secrets)
    assert "YZTC_AGGREGATOR_INTERNAL_TLS" not in env, "internal links are always mutual TLS: no switch"
    targets = [
        *json.loads(env["YZTC_AGGREGATOR_COMPANIES"]).values(),
        *json.loads(env["YZTC_AGGREGATOR_OPERATORS"]).values(),
        env["YZTC_AGGREGATOR_NOTIFIER_TARGET"],
    ]
    assert len(targets) == len(GRPC_SERVERS) - 1
    for target in targets:
        host, _, port = target.rpartition(":")
        server = workload(objs, host)  # the Service of the same name fronts it (test_configuration)
        assert int(port) == server.port_number("grpc")
        cert = certificate(stand_in_secrets[f"yztc-{host}-tls"]["tls.crt"])
        assert host in san(cert, x509.DNSName), f"{target}: the certificate does not name {host}"
