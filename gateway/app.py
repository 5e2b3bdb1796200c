"""The gateway's aiohttp application: routes, middlewares, and the
resources each opened and closed by a cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway import h5_page, handlers
from gateway.aggregator_client import AggregatorClient
from gateway.alipay_login import AlipayLogin
from gateway.client_address import networks
from gateway.enterprise_directory import EnterpriseDirectory
from gateway.http_protocol import HANDLER_ARGS
from gateway.keys import (
    AGGREGATOR,
    ALIPAY,
    ENTERPRISES,
    HASHER,
    MONGO,
    PHONE_AUTHORISATION,
    RATE_LIMIT_SLOTS,
    RATE_LIMITER,
    READINESS,
    SESSIONS,
    SETTINGS,
    TRUSTED_PROXIES,
)
from gateway.middlewares import MIDDLEWARES, add_security_headers, trace_request
from gateway.phone_number import PhoneAuthorisation
from gateway.rate_limits import MongoSlotStore, RateLimiter
from gateway.readiness import Readiness
from gateway.sessions import SessionStore
from gateway.settings import GatewaySettings
from yztc.mongo import connect
from yztc.telemetry import tracing
from yztc.tls import channel_credentials, open_channel

log = logging.getLogger("gateway")

PURGE_INTERVAL_SECONDS = 600.0
# For a runner other than gateway.http_protocol.GatewayRunner (which sets it
# itself): aiohttp's own access log prints raw paths and query strings; the
# request_context middleware writes one without them.
RUNNER_OPTIONS = {"access_log": None}


async def _purge_expired(sessions: SessionStore, slots: MongoSlotStore) -> None:
    """FerretDB has no TTL index: expired sessions and rate-limit slots are deleted here."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
        for name, store in (("session", sessions), ("rate-limit slot", slots)):
            try:
                await store.purge_expired()
            except Exception:  # a down database must not end the loop
                log.warning("%s purge failed", name)


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = connect(settings.mongodb_uri, "gateway")
    db = client.get_default_database()
    hasher = app[HASHER]
    store = SessionStore(
        db,
        settings.session_ttl_seconds,
        idle_seconds=settings.session_idle_seconds,
        max_per_user=settings.max_sessions_per_user,
        hasher=hasher,
    )
    slots = MongoSlotStore(db)
    try:
        await store.ensure_indexes()
        await slots.ensure_indexes()
        app[MONGO], app[SESSIONS] = client, store
        app[RATE_LIMIT_SLOTS], app[RATE_LIMITER] = slots, RateLimiter(slots, hasher=hasher)
        purger = asyncio.create_task(_purge_expired(store, slots), name="purge-expired")
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
    app[ENTERPRISES] = EnterpriseDirectory(
        lambda: app[AGGREGATOR].list_enterprises(), settings.enterprises_cache_seconds
    )
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
            user_key=settings.alipay_user_key,
        )
        yield


def create_app(settings: GatewaySettings) -> web.Application:
    # The request span is outermost, so the access log line carries its trace
    # id; with tracing off there is no span, not even a no-op one.
    middlewares = [trace_request, *MIDDLEWARES] if tracing() else list(MIDDLEWARES)
    # The HTTP limits (gateway.http_protocol): the body's here, the request
    # line's and the headers' in handler_args, whatever runs the app.
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes, handler_args=HANDLER_ARGS)
    app[SETTINGS] = settings
    app[TRUSTED_PROXIES] = networks(settings.trusted_proxies)
    # Read at start: a hash key that is not base64 stops the gateway.
    app[HASHER] = settings.hasher()
    # Read at start, so a wrong key file stops the gateway before it serves.
    app[PHONE_AUTHORISATION] = PhoneAuthorisation(settings.alipay_public_key_file, settings.aes_key)
    # Order matters: readiness (in `aggregator`) uses the Mongo client.
    app.cleanup_ctx.extend([database, aggregator, alipay])
    app.on_response_prepare.append(add_security_headers)
    app.router.add_post("/api/v1/sessions", handlers.create_session)
    app.router.add_delete("/api/v1/sessions", handlers.end_session)
    app.router.add_post("/api/v1/phone-number", handlers.phone_number)
    app.router.add_post("/api/v1/verification-codes", handlers.request_verification_code)
    app.router.add_post("/api/v1/queries", handlers.submit_query)
    app.router.add_get("/api/v1/queries/{query_id}", handlers.get_query)
    app.router.add_get("/api/v1/enterprises", handlers.list_enterprises)
    app.router.add_get("/api/v1/openapi.json", handlers.openapi_document)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    h5_page.add_routes(app)
    return app
