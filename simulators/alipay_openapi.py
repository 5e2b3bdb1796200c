"""Alipay's OpenAPI gateway, as far as yztc uses it: `alipay.system.oauth.token`
turning a mini-program auth code into the Alipay user's ids (`user_id`,
`open_id` or both, as the scenario's `alipay.ids` says).

    POST /gateway.do      form-encoded, common parameters in the query string
                          and/or the body (merged, as Alipay accepts both)
    POST /sim/auth-codes  {"user_id"} -> {"auth_code"}: the simulator's test hook,
                          a single-use code as my.getAuthCode would give
    POST /sim/phone-number-payloads  {"phone", "refused"?} -> what my.getPhoneNumber
                          gives the mini-program (`response`, `sign`, ...), encrypted
                          with the app's AES key (env YZTC_SIM_ALIPAY_AES_KEY) and
                          signed like Alipay; `refused`: the user did not authorise
    GET|POST /oauth2/publicAppAuthorize.htm  the web authorization of an H5 page:
                          pick a demo user, get a single-use auth code back at
                          redirect_uri (simulators.alipay_web_authorize)

Like Alipay, every answer is HTTP 200 with a body
`{"<method>_response" | "error_response": {...}, "sign": "<RSA2>"}`, the sign
covering the exact text of the inner object; the request's own RSA2 signature
is checked against the app's public key before anything else is looked at.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators import alipay_phone_number, alipay_web_authorize
from simulators.alipay_signature import load_private_key, load_public_key, sign_content, sign_rsa2, verify_rsa2
from simulators.http_json import bad_request, json_object, string_field
from simulators.scenario import Scenario

log = logging.getLogger("simulators.alipay")

OAUTH_TOKEN = "alipay.system.oauth.token"
_USER_ID = re.compile(r"2088\d{12}")
# Any number Alipay might hold, so tests can also give non-mainland ones.
_MOBILE = re.compile(r"\+?\d{5,20}")
AES_KEY_ENV = "YZTC_SIM_ALIPAY_AES_KEY"
_BEIJING = dt.timezone(dt.timedelta(hours=8))


class AuthCodes:
    """The scenario's reusable demo codes, plus single-use codes minted by tests."""

    def __init__(self, reusable: dict[str, str]) -> None:
        self._reusable = dict(reusable)
        self._single_use: dict[str, str] = {}

    def mint(self, user_id: str) -> str:
        code = secrets.token_hex(16)
        self._single_use[code] = user_id
        return code

    def redeem(self, code: str) -> str | None:
        """The user id behind `code`, or None if unknown or already used."""
        if code in self._reusable:
            return self._reusable[code]
        return self._single_use.pop(code, None)


@dataclass(frozen=True)
class _Gateway:
    app_id: str
    app_public_key: rsa.RSAPublicKey
    alipay_private_key: rsa.RSAPrivateKey
    codes: AuthCodes
    tamper: bool
    aes_key: bytes | None
    ids: str  # "both", "user_id" or "open_id"


GATEWAY = web.AppKey("gateway", _Gateway)


def create_app(
    scenario: Scenario,
    *,
    app_id: str,
    app_public_key: str | os.PathLike[str],
    alipay_private_key: str | os.PathLike[str],
    tamper: bool | None = None,
    aes_key: str | None = None,
    ids: str | None = None,
) -> web.Application:
    """`app_public_key`: our app's key (SPKI PEM file, PEM text or body);
    `alipay_private_key`: the simulator's own (PKCS#1 PEM file or text);
    `tamper`: sign every answer wrongly (default: the scenario's
    `alipay.tamper_signatures`), to prove clients refuse such answers;
    `aes_key`: the app's AES content key, base64 (default: env
    YZTC_SIM_ALIPAY_AES_KEY; without one, no phone-number payloads);
    `ids`: which of the user's ids a login answers with, "both", "user_id"
    or "open_id" (default: the scenario's `alipay.ids`)."""
    if ids not in (None, "both", "user_id", "open_id"):
        raise ValueError("ids must be both, user_id or open_id")
    # Read here rather than in SimulatorSettings, which belongs to all the
    # simulators; a malformed key stops start-up (ValueError).
    aes_text = aes_key if aes_key is not None else os.environ.get(AES_KEY_ENV, "")
    app = web.Application()
    app[GATEWAY] = _Gateway(
        app_id=app_id,
        app_public_key=load_public_key(app_public_key),
        alipay_private_key=load_private_key(alipay_private_key),
        codes=AuthCodes(scenario.alipay.auth_codes),
        tamper=scenario.alipay.tamper_signatures if tamper is None else tamper,
        aes_key=alipay_phone_number.aes_key(aes_text) if aes_text else None,
        ids=scenario.alipay.ids if ids is None else ids,
    )
    app.router.add_post("/gateway.do", _gateway)
    app.router.add_post("/sim/auth-codes", _mint_auth_code)
    app.router.add_post("/sim/phone-number-payloads", _phone_number_payload)
    show, grant = alipay_web_authorize.make_handlers(
        lambda a: a[GATEWAY].app_id,
        lambda a: a[GATEWAY].codes,
        lambda a: alipay_web_authorize.demo_users(scenario.alipay.auth_codes),
    )
    app.router.add_get(alipay_web_authorize.PATH, show)
    app.router.add_post(alipay_web_authorize.PATH, grant)
    return app


async def _gateway(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    params = dict(request.query)
    form = await request.post()
    params.update({k: v for k, v in form.items() if isinstance(v, str)})
    name, inner = _answer(gateway, params)
    log.info(
        "gateway answered",
        extra={"fields": {"method": params.get("method"), "outcome": inner.get("sub_code", "success")}},
    )
    return web.Response(text=_signed_body(gateway, name, inner), content_type="application/json", charset="utf-8")


async def _mint_auth_code(request: web.Request) -> web.Response:
    user_id = string_field(await json_object(request), "user_id", _USER_ID)
    return web.json_response({"auth_code": request.app[GATEWAY].codes.mint(user_id)})


async def _phone_number_payload(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = await json_object(request)
    mobile = string_field(body, "phone", _MOBILE)
    refused = body.get("refused", False)
    if not isinstance(refused, bool):
        raise bad_request("refused must be true or false")
    if gateway.aes_key is None:
        return web.json_response({"error": f"no AES key: set {AES_KEY_ENV}"}, status=503)
    return web.json_response(
        alipay_phone_number.payload(
            gateway.alipay_private_key, gateway.aes_key, mobile, refused=refused, tamper=gateway.tamper
        )
    )


def _answer(gateway: _Gateway, params: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(response name, inner object) for a gateway request."""
    for param, sub_code in (
        ("app_id", "isv.missing-app-id"),
        ("method", "isv.missing-method"),
        ("sign_type", "isv.missing-signature-type"),
        ("sign", "isv.missing-signature"),
    ):
        if not params.get(param):
            return "error_response", _error("40001", "Missing Required Arguments", sub_code, f"缺少{param}参数")
    if params["app_id"] != gateway.app_id:
        return "error_response", _error("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
    if params["sign_type"] != "RSA2":
        return "error_response", _error("40002", "Invalid Arguments", "isv.invalid-signature-type", "无效的签名类型")
    # The sub_msg does not echo the sign content as Alipay's does: it holds
    # the auth code, which would then end up in the caller's logs.
    if not verify_rsa2(gateway.app_public_key, sign_content(params).encode("utf-8"), params["sign"]):
        return "error_response", _error(
            "40002",
            "Invalid Arguments",
            "isv.invalid-signature",
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",
        )
    if params["method"] != OAUTH_TOKEN:
        return "error_response", _error("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
    return OAUTH_TOKEN.replace(".", "_") + "_response", _oauth_token(gateway, params)


def _oauth_token(gateway: _Gateway, params: dict[str, str]) -> dict[str, Any]:
    if params.get("grant_type") != "authorization_code":
        return _error("40002", "Invalid Arguments", "isv.grant-type-invalid", "grant_type参数不正确")
    user_id = gateway.codes.redeem(params.get("code", ""))
    if user_id is None:
        return _error("40002", "Invalid Arguments", "isv.code-invalid", "授权码code无效")
    ids = {"user_id": user_id, "open_id": open_id_for(gateway.app_id, user_id)}
    return {
        **(ids if gateway.ids == "both" else {gateway.ids: ids[gateway.ids]}),
        "access_token": "authusrB" + secrets.token_hex(16),
        "expires_in": 1296000,
        "re_expires_in": 2592000,
        "refresh_token": "authusrB" + secrets.token_hex(16),
        "auth_start": dt.datetime.now(_BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
    }


def open_id_for(app_id: str, user_id: str) -> str:
    """The open_id the simulator gives `user_id` in app `app_id`: per app and
    user, and stable, as Alipay's is (43 URL-safe base64 characters)."""
    digest = hashlib.sha256(f"{app_id}:{user_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _error(code: str, msg: str, sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


def _signed_body(gateway: _Gateway, name: str, inner: dict[str, Any]) -> str:
    # Clients verify the sign over the inner object's text exactly as it
    # appears in the body, so it is serialised once and spliced in verbatim.
    text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
    signed = ("tampered" + text) if gateway.tamper else text
    sign = sign_rsa2(gateway.alipay_private_key, signed.encode("utf-8"))
    return f'{{"{name}":{text},"sign":"{sign}"}}'
