"""gRPC transport security from settings, failing closed (issue 13, H1/M3).

Every gRPC server and client uses mutual TLS from the *internal* CA
(`YZTC_TLS_CA`, `YZTC_TLS_CERT`, `YZTC_TLS_KEY`). Without them a service
refuses to start (SystemExit, non-zero, naming the missing variables) unless
the development switch `YZTC_DEVELOPMENT=1` is set; then it runs plaintext,
logs a WARNING at every start, and only on loopback addresses.

Identity is the certificate's one SAN URI (SPIFFE form), never its CN:
`spiffe://yztc/service/<name>` for our services, `spiffe://yztc/channel/<id>`
for channels (CONTRACT "Channels"). A certificate with no URI, several, or
one of the other kind has no identity.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509

from yztc.grpc_options import client_options
from yztc.revoked_certificates import RevokedCertificates
from yztc.settings import GrpcTlsSettings

log = logging.getLogger(__name__)

SERVICE_PREFIX = "spiffe://yztc/service/"
CHANNEL_PREFIX = "spiffe://yztc/channel/"
# What may follow a prefix: a channel id or a service name.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_TLS_VARS = {"tls_ca": "YZTC_TLS_CA", "tls_cert": "YZTC_TLS_CERT", "tls_key": "YZTC_TLS_KEY"}


def service_uri(name: str) -> str:
    """`spiffe://yztc/service/<name>`: an internal service's identity."""
    return SERVICE_PREFIX + name


def channel_uri(channel: str) -> str:
    """`spiffe://yztc/channel/<id>`: a channel's identity."""
    return CHANNEL_PREFIX + channel


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def is_loopback(address: str) -> bool:
    """'127.0.0.1:50051', '[::1]:1', 'localhost:80', 'dns:///localhost:1' → True."""
    host = address.rsplit("/", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_ssl_context(tls: GrpcTlsSettings) -> ssl.SSLContext:
    """A TLS server context for HTTP (TLS 1.2 or later, ALPN http/1.1) with
    the service's internal certificate and key, for a proxy that verifies
    it by the internal CA: the gateway behind the ingress controller. No
    client certificate is asked for (kubelet's HTTPS probes present none).
    SystemExit naming the variables if the certificate or key is unset;
    OSError or ssl.SSLError if they cannot be loaded."""
    missing = [env for field, env in _TLS_VARS.items() if field != "tls_ca" and not getattr(tls, field)]
    if missing:
        raise SystemExit(f"serving HTTPS needs the internal certificate; missing: {', '.join(missing)}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.tls_cert, tls.tls_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def missing_tls(tls: GrpcTlsSettings, extra: dict[str, str] | None = None) -> list[str]:
    """Names of the TLS variables not set (`extra`: {env var name: value} a
    service needs besides the three)."""
    names = [env for field, env in _TLS_VARS.items() if not getattr(tls, field)]
    names += [env for env, value in (extra or {}).items() if not value]
    return names


def require_tls(
    tls: GrpcTlsSettings,
    service: str,
    *,
    addresses: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
) -> bool:
    """At start: True when every certificate is configured (mutual TLS).
    False only under YZTC_DEVELOPMENT=1 with none configured and every
    address in `addresses` (listen addresses, targets) on loopback; it then
    logs a WARNING. Anything else exits the process (SystemExit, status 1)
    with a message naming what is missing."""
    missing = missing_tls(tls, extra)
    if not missing:
        return True
    wanted = [*_TLS_VARS.values(), *(extra or {})]
    if not tls.development:
        raise SystemExit(
            f"{service}: refusing to start without TLS certificates: set {', '.join(wanted)} "
            f"(missing: {', '.join(missing)}); internal gRPC is mutual TLS only. "
            "YZTC_DEVELOPMENT=1 allows plaintext on loopback addresses for development."
        )
    if len(missing) != len(wanted):
        raise SystemExit(
            f"{service}: TLS half configured: missing {', '.join(missing)} (set all of {', '.join(wanted)})"
        )
    remote = [a for a in addresses if not is_loopback(a)]
    if remote:
        raise SystemExit(
            f"{service}: refusing plaintext gRPC on non-loopback addresses {', '.join(remote)}: "
            f"set {', '.join(wanted)} (YZTC_DEVELOPMENT=1 allows plaintext on loopback only)"
        )
    log.warning(
        "plaintext gRPC, no certificates and no caller authentication (YZTC_DEVELOPMENT=1); never in production",
        extra={"fields": {"service": service}},
    )
    return False


def _plaintext_allowed(tls: GrpcTlsSettings, what: str) -> None:
    """The shared refusal behind both credential builders."""
    if not tls.development or any(getattr(tls, f) for f in _TLS_VARS):
        raise SystemExit(f"{what}: missing {', '.join(missing_tls(tls))}; plaintext needs YZTC_DEVELOPMENT=1")


def server_credentials(tls: GrpcTlsSettings, client_ca: str | None = None) -> grpc.ServerCredentials | None:
    """Mutual TLS: our certificate from YZTC_TLS_CERT/KEY; clients must
    present a certificate signed by `client_ca` (a PEM file; default the
    internal CA, YZTC_TLS_CA). None (plaintext) only under YZTC_DEVELOPMENT
    with no certificate configured; otherwise a missing file exits."""
    if missing_tls(tls):
        _plaintext_allowed(tls, "gRPC server")
        return None
    return grpc.ssl_server_credentials(
        [(_read(tls.tls_key), _read(tls.tls_cert))],
        root_certificates=_read(client_ca or tls.tls_ca),
        require_client_auth=True,
    )


def channel_credentials(tls: GrpcTlsSettings) -> grpc.ChannelCredentials | None:
    """Our client identity and the internal CA that signs the servers we call;
    None (plaintext) only under YZTC_DEVELOPMENT with no certificate."""
    if missing_tls(tls):
        _plaintext_allowed(tls, "gRPC client")
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.tls_ca),
        private_key=_read(tls.tls_key),
        certificate_chain=_read(tls.tls_cert),
    )


def open_channel(
    target: str, creds: grpc.ChannelCredentials | None, server_name: str | None = None
) -> grpc.aio.Channel:
    """An aio channel with our keep-alive and retry policy (yztc/grpc_options.py);
    `server_name` overrides the name checked in the server's certificate.
    Plaintext (creds None, development only) is refused to a non-loopback target."""
    options = client_options()
    if creds is None:
        if not is_loopback(target):
            raise SystemExit(f"refusing plaintext gRPC to non-loopback {target}: configure YZTC_TLS_*")
        return grpc.aio.insecure_channel(target, options=options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(target, creds, options=options)


@dataclass(frozen=True)
class PeerCertificate:
    """What identifies a peer: its certificate's SAN URIs and serial number."""

    uris: tuple[str, ...]
    serial: int

    def identity(self, prefix: str) -> str | None:
        """The name after `prefix` when the certificate carries exactly one
        URI and it has that prefix and a well-formed name; else None."""
        if len(self.uris) != 1 or not self.uris[0].startswith(prefix):
            return None
        name = self.uris[0][len(prefix) :]
        return name if _NAME.fullmatch(name) else None


@functools.lru_cache(maxsize=4096)
def parse_certificate(pem: bytes) -> PeerCertificate | None:
    """The peer's certificate parsed once per distinct certificate (cached
    by its bytes: one parse per channel, not per call)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    return PeerCertificate(uris, cert.serial_number)


def peer_certificate(auth: dict[str, list[bytes]]) -> PeerCertificate | None:
    """The client certificate of a call (from `context.auth_context()`);
    None under plaintext or without one."""
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    pems = auth.get("x509_pem_cert")
    return parse_certificate(pems[0]) if pems else None


def is_plaintext(auth: dict[str, list[bytes]]) -> bool:
    return auth.get("transport_security_type") != [b"ssl"]


async def require_caller(
    context: grpc.aio.ServicerContext, allowed: frozenset[str], revoked: RevokedCertificates | None = None
) -> None:
    """Internal services answer only the services meant to call them: the
    client certificate's `spiffe://yztc/service/<name>` with name in
    `allowed` (else PERMISSION_DENIED), and its serial not in `revoked`
    (else UNAUTHENTICATED). A plaintext server exists only under
    YZTC_DEVELOPMENT on loopback (require_tls); there is no certificate to
    check then."""
    auth = context.auth_context()  # built afresh on every call: read it once
    if is_plaintext(auth):
        return
    peer = peer_certificate(auth)
    if peer is not None and revoked is not None and revoked.revoked(peer.serial):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "caller certificate revoked")
    caller = peer.identity(SERVICE_PREFIX) if peer else None
    if caller not in allowed:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "caller not allowed")
