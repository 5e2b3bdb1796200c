"""`python -m platform_connectors company tencent` (or `operator cmcc`):
one connector process for one enterprise."""

from __future__ import annotations

import argparse
import logging
import re

from platform_connectors.company import CompanyConnectorServicer
from platform_connectors.operator import OperatorConnectorServicer
from platform_connectors.settings import ConnectorSettings
from platform_connectors.upstream import Upstream
from yztc import event_loop
from yztc.certificate_expiry import watch_certificates
from yztc.grpc_server import GrpcService, run_until_signalled
from yztc.identifiers import OPERATOR_IDS
from yztc.logs import setup_logging
from yztc.revoked_certificates import RevokedCertificates
from yztc.settings import GrpcTlsSettings
from yztc.telemetry import setup_telemetry, shutdown_telemetry
from yztc.tls import require_tls, server_credentials
from yztc.v1 import (
    company_connector_pb2,
    company_connector_pb2_grpc,
    operator_connector_pb2,
    operator_connector_pb2_grpc,
)

log = logging.getLogger("platform_connectors")


async def main(kind: str, enterprise: str) -> None:
    settings = ConnectorSettings()
    name = f"connector-{enterprise}"
    setup_logging(name, settings.log_level)
    setup_telemetry(name, settings)
    # Fail closed (M3): no certificates, no start (unless YZTC_DEVELOPMENT=1).
    tls = GrpcTlsSettings()
    require_tls(tls, name, addresses=(settings.listen,))
    watch_certificates(name, tls)
    revoked = RevokedCertificates.from_setting(tls.tls_revoked_serials_file)
    # Partners as they expect (M10): https:// and our signing key, or no start.
    upstream = Upstream.from_settings(settings, name)
    if kind == "company":
        servicer = CompanyConnectorServicer(upstream, settings.allowed_callers, revoked)
        register = lambda s: company_connector_pb2_grpc.add_CompanyConnectorServicer_to_server(servicer, s)  # noqa: E731
        full_name = company_connector_pb2.DESCRIPTOR.services_by_name["CompanyConnector"].full_name
    else:
        servicer = OperatorConnectorServicer(upstream, settings.allowed_callers, revoked)
        register = lambda s: operator_connector_pb2_grpc.add_OperatorConnectorServicer_to_server(servicer, s)  # noqa: E731
        full_name = operator_connector_pb2.DESCRIPTOR.services_by_name["OperatorConnector"].full_name
    service = GrpcService(settings.listen, register, [full_name], credentials=server_credentials(tls))

    async def start() -> None:
        await upstream.open()
        await service.start()
        print(f"{name} listening on port {service.port}", flush=True)

    async def stop() -> None:
        await service.stop()
        await upstream.close()
        shutdown_telemetry()

    await run_until_signalled(start, stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m platform_connectors")
    parser.add_argument("kind", choices=["company", "operator"])
    parser.add_argument("enterprise")
    args = parser.parse_args()
    # Companies join by configuration, so any well-formed id is a company;
    # the four operators are fixed.
    if args.kind == "operator" and args.enterprise not in OPERATOR_IDS:
        parser.error(f"unknown operator id {args.enterprise!r}; one of {' '.join(OPERATOR_IDS)}")
    if args.kind == "company" and not re.fullmatch(r"[a-z][a-z0-9_]{1,31}", args.enterprise):
        parser.error(f"{args.enterprise!r} is not a company id (lower-case letters, digits, _)")
    event_loop.run(main(args.kind, args.enterprise))
