"""The gateway's aiohttp application: routes, middlewares, and the
resources each opened and closed by a cleanup context."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway import handlers
from gateway.aggregator_client import AggregatorClient
from gateway.alipay_login import AlipayLogin
from gateway.keys import AGGREGATOR, ALIPAY, MONGO, READINESS, SESSIONS, SETTINGS
from gateway.middlewares import MIDDLEWARES, add_security_headers
from gateway.readiness import Readiness
from gateway.sessions import SessionStore
from gateway.settings import GatewaySettings
from yztc.mongo import connect
from yztc.tls import channel_credentials, open_channel

log = logging.getLogger("gateway")

PURGE_INTERVAL_SECONDS = 600.0
# For every runner of the app (python -m gateway, tests): aiohttp's own access
# log prints raw paths and query strings; the request_context middleware
# writes one without them.
RUNNER_OPTIONS = {"access_log": None}


async def _purge_sessions(store: SessionStore) -> None:
    """FerretDB has no TTL index: expired sessions are deleted here."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
        try:
            await store.purge_expired()
        except Exception:  # a down database must not end the loop
            log.warning("session purge failed")


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = connect(settings.mongodb_uri, "gateway")
    store = SessionStore(client.get_default_database(), settings.session_ttl_seconds)
    try:
        await store.ensure_indexes()
        app[MONGO], app[SESSIONS] = client, store
        purger = asyncio.create_task(_purge_sessions(store), name="session-purge")
        yield
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
    finally:
        await client.close()


async def aggregator(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    channel = open_channel(
        settings.aggregator_target,
        channel_credentials(settings.tls),
        settings.aggregator_server_name,
    )
    app[AGGREGATOR] = AggregatorClient(channel, settings.call_timeout_seconds)
    app[READINESS] = Readiness(app[MONGO], channel)
    yield
    await channel.close()


async def alipay(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with aiohttp.ClientSession() as http:
        app[ALIPAY] = AlipayLogin(
            http,
            url=settings.alipay_url,
            app_id=settings.alipay_app_id,
            app_private_key_file=settings.alipay_app_private_key_file,
            alipay_public_key_file=settings.alipay_public_key_file,
            timeout_seconds=settings.alipay_timeout_seconds,
        )
        yield


def create_app(settings: GatewaySettings) -> web.Application:
    # A fresh list: the OpenTelemetry instrumentation inserts its own middleware.
    app = web.Application(middlewares=list(MIDDLEWARES), client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    # Order matters: readiness (in `aggregator`) uses the Mongo client.
    app.cleanup_ctx.extend([database, aggregator, alipay])
    app.on_response_prepare.append(add_security_headers)
    app.router.add_post("/api/v1/sessions", handlers.create_session)
    app.router.add_post("/api/v1/verification-codes", handlers.request_verification_code)
    app.router.add_post("/api/v1/queries", handlers.submit_query)
    app.router.add_get("/api/v1/queries/{query_id}", handlers.get_query)
    app.router.add_get("/api/v1/enterprises", handlers.list_enterprises)
    app.router.add_get("/api/v1/openapi.json", handlers.openapi_document)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app
