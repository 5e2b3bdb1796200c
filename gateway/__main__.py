"""`python -m gateway`: read settings, serve HTTP (HTTPS with
YZTC_GATEWAY_SERVE_TLS) on `listen`, stop gracefully
on SIGTERM/SIGINT (in-flight requests finish within the shutdown timeout)."""

from __future__ import annotations

import json
import logging
import ssl
import sys

from aiohttp import web
from pydantic import ValidationError

from gateway.app import create_app
from gateway.http_protocol import GatewayRunner
from gateway.settings import GatewaySettings
from yztc import event_loop
from yztc.certificate_expiry import watch_certificates
from yztc.grpc_server import run_until_signalled
from yztc.logs import setup_logging
from yztc.settings import refuse_outside_development
from yztc.telemetry import setup_telemetry, shutdown_telemetry
from yztc.tls import require_tls, server_ssl_context

log = logging.getLogger("gateway")

# Shorter than Kubernetes' default 30 s termination grace period.
SHUTDOWN_TIMEOUT_SECONDS = 10.0


async def serve(settings: GatewaySettings, context: ssl.SSLContext | None = None) -> None:
    """Serves the app on settings.listen, over TLS with `context` if given."""
    runner = GatewayRunner(create_app(settings), shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)

    async def start() -> None:
        await runner.setup()
        host, port = settings.host_port
        await web.TCPSite(runner, host, port, ssl_context=context).start()
        bound_host, bound_port = runner.addresses[0][:2]
        scheme = "https" if context else "http"
        print(f"gateway listening on {scheme}://{bound_host}:{bound_port}", flush=True)
        log.debug("started", extra={"fields": {"settings": json.loads(settings.describe())}})

    await run_until_signalled(start, runner.cleanup)


def main() -> None:
    try:
        settings = GatewaySettings()
    except ValidationError as error:
        print(f"gateway: invalid settings:\n{error}", file=sys.stderr)
        sys.exit(2)
    setup_logging("gateway", settings.log_level)
    # Fail closed (L7, L6): production refuses development settings.
    refuse_outside_development("gateway", settings.development, settings.production_refusals)
    # Fail closed (M3): the link to the aggregator's internal port is mutual
    # TLS with the gateway's internal identity, unless YZTC_DEVELOPMENT=1.
    require_tls(settings.tls, "gateway", addresses=(settings.aggregator_target,))
    setup_telemetry("gateway", settings)
    watch_certificates("gateway", settings.tls)
    try:
        context = server_ssl_context(settings.tls) if settings.serve_tls else None
    except OSError as error:  # ssl.SSLError too: a certificate and key that do not load or match
        print(f"gateway: cannot serve HTTPS with YZTC_TLS_CERT and YZTC_TLS_KEY: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        event_loop.run(serve(settings, context))
    except ValueError as error:
        # A key file that is not the key it should be (create_app loads them).
        print(f"gateway: cannot start: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        shutdown_telemetry()


if __name__ == "__main__":
    main()
