"""The bare servers the ceilings are measured against, each a process of its
own like our services (`python -m bench.echo_servers KIND PORT [TARGETS]`):

- `grpc-echo PORT [PKI_DIR]`: grpc.aio, one unary method answering its
  request bytes; with PKI_DIR, over mutual TLS (`echo-server.pem` there,
  clients need a certificate of the same CA), as our internal links are.
- `grpc-fanout PORT HOST:PORT,...`: the same method, answered after calling
  every target's echo concurrently: our fan-out's shape without its work.
- `http-json PORT`: aiohttp, POST /echo parses a JSON body and answers 202
  with a small JSON object, the shape of POST /api/v1/queries.

Stock asyncio, grpcio and aiohttp as the services use them, no TLS unless
asked, no telemetry, no database: what the machine does with the framework
alone.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
from aiohttp import web

METHOD = "/bench.Echo/Echo"


def _echo_handler(behaviour) -> grpc.GenericRpcHandler:
    # No (de)serializers: requests and answers are the raw bytes.
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(behaviour)})


def server_credentials(pki: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [((pki / "echo-server-key.pem").read_bytes(), (pki / "echo-server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )


async def _serve_grpc(port: int, behaviour, pki: Path | None = None) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_echo_handler(behaviour),))
    if pki is None:
        server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        server.add_secure_port(f"127.0.0.1:{port}", server_credentials(pki))
    await server.start()
    await _until_terminated()
    await server.stop(0)


async def _until_terminated() -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()


async def grpc_echo(port: int, pki: Path | None = None) -> None:
    async def echo(request: bytes, context) -> bytes:
        return request

    await _serve_grpc(port, echo, pki)


async def grpc_fanout(port: int, targets: list[str]) -> None:
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    calls = [c.unary_unary(METHOD) for c in channels]

    async def fan_out(request: bytes, context) -> bytes:
        answers = await asyncio.gather(*(call(request, timeout=10) for call in calls))
        return answers[0]

    await _serve_grpc(port, fan_out)
    for channel in channels:
        await channel.close()


async def http_json(port: int) -> None:
    async def accept(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"query_id": "0" * 32, "status": "IN_PROGRESS", "deliver_by": "2026-01-01T00:00:00Z", "n": len(body)},
            status=202,
        )

    app = web.Application()
    app.router.add_post("/echo", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await _until_terminated()
    await runner.cleanup()


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "grpc-echo":
        asyncio.run(grpc_echo(port, Path(argv[2]) if len(argv) > 2 else None))
    elif kind == "grpc-fanout":
        asyncio.run(grpc_fanout(port, argv[2].split(",")))
    elif kind == "http-json":
        asyncio.run(http_json(port))
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
