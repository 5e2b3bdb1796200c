"""gRPC transport security from settings: mutual TLS, or plaintext when no
certificate is configured (the explicit development switch)."""

from __future__ import annotations

from pathlib import Path

import grpc

from yztc.grpc_options import client_options
from yztc.settings import GrpcTlsSettings


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(tls: GrpcTlsSettings) -> grpc.ServerCredentials | None:
    """Mutual TLS: clients must present a certificate signed by our CA."""
    if not tls.tls_cert:
        return None
    return grpc.ssl_server_credentials(
        [(_read(tls.tls_key), _read(tls.tls_cert))],
        root_certificates=_read(tls.tls_ca),
        require_client_auth=True,
    )


def channel_credentials(tls: GrpcTlsSettings) -> grpc.ChannelCredentials | None:
    if not tls.tls_cert:
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
    `server_name` overrides the name checked in the server's certificate."""
    options = client_options()
    if creds is None:
        return grpc.aio.insecure_channel(target, options=options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(target, creds, options=options)


def peer_common_name(context: grpc.aio.ServicerContext) -> str | None:
    """The client certificate's common name: the caller's identity."""
    names = context.auth_context().get("x509_common_name")
    return names[0].decode() if names else None


async def require_caller(context: grpc.aio.ServicerContext, allowed: frozenset[str]) -> None:
    """Internal services answer only the services meant to call them (by the
    common name of their client certificate). Under the plaintext
    development switch there is no certificate, and no check."""
    auth = context.auth_context()  # built afresh on every call: read it once
    if auth.get("transport_security_type") != [b"ssl"]:
        return
    names = auth.get("x509_common_name")
    caller = names[0].decode() if names else None
    if caller not in allowed:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "caller not allowed")
