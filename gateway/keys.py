"""Typed keys for what the app and each request carry (aiohttp AppKey/RequestKey)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

    from gateway.aggregator_client import AggregatorClient
    from gateway.alipay_login import AlipayLogin
    from gateway.client_address import Network
    from gateway.enterprise_directory import EnterpriseDirectory
    from gateway.phone_number import PhoneAuthorisation
    from gateway.rate_limits import MongoSlotStore, RateLimiter
    from gateway.readiness import Readiness
    from gateway.sessions import SessionStore
    from gateway.settings import GatewaySettings
    from yztc.keyed_hashes import KeyedHasher

SETTINGS: web.AppKey[GatewaySettings] = web.AppKey("settings")
MONGO: web.AppKey[AsyncMongoClient] = web.AppKey("mongo")
SESSIONS: web.AppKey[SessionStore] = web.AppKey("sessions")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
RATE_LIMIT_SLOTS: web.AppKey[MongoSlotStore] = web.AppKey("rate_limit_slots")
TRUSTED_PROXIES: web.AppKey[tuple[Network, ...]] = web.AppKey("trusted_proxies")
AGGREGATOR: web.AppKey[AggregatorClient] = web.AppKey("aggregator")
ENTERPRISES: web.AppKey[EnterpriseDirectory] = web.AppKey("enterprises")
ALIPAY: web.AppKey[AlipayLogin] = web.AppKey("alipay")
PHONE_AUTHORISATION: web.AppKey[PhoneAuthorisation] = web.AppKey("phone_authorisation")
READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
HASHER: web.AppKey[KeyedHasher] = web.AppKey("hasher")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
# The client's address as a rate-limit subject (see client_address).
CLIENT: web.RequestKey[str] = web.RequestKey("client")
# The key of the Alipay user behind the request's session (gateway.alipay_login):
# the aggregator's requester_id.
USER_ID: web.RequestKey[str] = web.RequestKey("user_id")
# The session's stored id (the token's hash), for per-session limits.
SESSION_ID: web.RequestKey[str] = web.RequestKey("session_id")
