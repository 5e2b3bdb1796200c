"""Typed keys for what the app and each request carry (aiohttp AppKey/RequestKey)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

    from gateway.aggregator_client import AggregatorClient
    from gateway.alipay_login import AlipayLogin
    from gateway.readiness import Readiness
    from gateway.sessions import SessionStore
    from gateway.settings import GatewaySettings

SETTINGS: web.AppKey["GatewaySettings"] = web.AppKey("settings")
MONGO: web.AppKey["AsyncMongoClient"] = web.AppKey("mongo")
SESSIONS: web.AppKey["SessionStore"] = web.AppKey("sessions")
AGGREGATOR: web.AppKey["AggregatorClient"] = web.AppKey("aggregator")
ALIPAY: web.AppKey["AlipayLogin"] = web.AppKey("alipay")
READINESS: web.AppKey["Readiness"] = web.AppKey("readiness")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
# The Alipay user id behind the request's session: the aggregator's requester_id.
USER_ID: web.RequestKey[str] = web.RequestKey("user_id")
