"""HTTP handlers: translate JSON to calls and answers back; nothing else.
Validation lives in request_bodies, rules in the aggregator."""
from __future__ import annotations

from aiohttp import web

from gateway import request_bodies
from gateway.json_answers import json_answer
from gateway.keys import AGGREGATOR, ALIPAY, READINESS, SESSIONS, USER_ID
from gateway.openapi import OPENAPI
from gateway.sessions import authenticated
from yztc.errors import ServiceError


async def create_session(request: web.Request) -> web.Response:
    auth_code = request_bodies.auth_code(await request_bodies.read_json_object(request))
    user_id = await request.app[ALIPAY].user_id(auth_code)
    token, expires_in = await request.app[SESSIONS].create(user_id)
    return json_answer({"token": token, "expires_in": expires_in})


@authenticated
async def request_verification_code(request: web.Request) -> web.Response:
    phone = request_bodies.phone(await request_bodies.read_json_object(request))
    answer = await request.app[AGGREGATOR].request_code(phone, request[USER_ID])
    return json_answer(answer, status=202)


@authenticated
async def submit_query(request: web.Request) -> web.Response:
    form = request_bodies.query_form(await request_bodies.read_json_object(request))
    answer = await request.app[AGGREGATOR].submit_query(
        form.phone, form.id_last6, form.code, request[USER_ID]
    )
    return json_answer(answer, status=202)


@authenticated
async def get_query(request: web.Request) -> web.Response:
    query_id = request_bodies.query_id(request)
    return json_answer(await request.app[AGGREGATOR].get_query(query_id, request[USER_ID]))


async def list_enterprises(request: web.Request) -> web.Response:
    return json_answer(await request.app[AGGREGATOR].list_enterprises())


async def openapi_document(request: web.Request) -> web.Response:
    return json_answer(OPENAPI)


async def healthz(request: web.Request) -> web.Response:
    return json_answer({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if not await request.app[READINESS].ready():
        raise ServiceError("UNAVAILABLE")
    return json_answer({"status": "ready"})
