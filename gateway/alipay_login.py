"""Alipay login: exchanges the mini-program's auth code for the key of the
Alipay user (alipay.system.oauth.token).

Alipay answers with `user_id` (16 digits from 2088), `open_id` (per app
and user, for apps on its openid scheme), or both. Both are stable for a
person; the key is the one the settings name while both come back, else
the one that came. An open_id key is written `open_id:<open_id>`, so it can
never be taken for a user_id key; queries and limits are bound to the key.

alipay-sdk-python builds the request and verifies Alipay's answer; we do
the transport and the request's RSA2 signature. Why: the SDK's HTTP layer is
blocking http.client and cannot take a server_url with a port (it hard-codes
80/443 and crashes), so its `execute()` is unusable against a local
simulator and would block the event loop. We call the two private steps of
`execute()` instead — name-mangled methods of the SDK version pinned in
pyproject.toml, covered by tests — and POST with aiohttp. The SDK signs
with the pure-Python `rsa` package, 20 ms of CPU per login holding the GIL
(a flood of made-up auth codes would stall every other request), so its
builder runs with skip_sign and the same signature (PKCS#1 v1.5 is
deterministic: the tests compare them) is made with `cryptography` in
0.2 ms. Verifying is a public-key operation, 0.3 ms in `rsa`, left to the SDK.
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode

import aiohttp
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.constant.CommonConstants import THREAD_LOCAL
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.exception.Exception import ResponseException
from alipay.aop.api.request.AlipaySystemOauthTokenRequest import AlipaySystemOauthTokenRequest
from alipay.aop.api.response.AlipaySystemOauthTokenResponse import (
    AlipaySystemOauthTokenResponse,
)
from alipay.aop.api.util.SignatureUtils import get_sign_content
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from yztc.errors import ServiceError

_FORM = "application/x-www-form-urlencoded;charset=utf-8"

UserKey = Literal["user_id", "open_id"]
OPEN_ID_PREFIX = "open_id:"
# user_id is 16 digits, open_id some 40-64 letters and digits; the bound keeps
# a key, which is stored with every session and query, small.
_ALIPAY_ID = re.compile(r"[A-Za-z0-9_.+/=-]{1,128}")


def pem_body(path: Path) -> str:
    """The base64 lines of a PEM file: the SDK adds its own header lines."""
    lines = path.read_text(encoding="ascii").strip().splitlines()
    return "\n".join(line for line in lines if not line.startswith("-----"))


def _sdk_thread_state() -> None:
    # The SDK keeps a per-thread request uuid (used in its exception texts)
    # and logger; worker threads start without them.
    THREAD_LOCAL.uuid = uuid.uuid4().hex
    THREAD_LOCAL.logger = None


class AlipayLogin:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        app_id: str,
        app_private_key_file: Path,
        alipay_public_key_file: Path,
        timeout_seconds: float,
        user_key: UserKey = "user_id",
    ) -> None:
        def client(skip_sign: bool) -> DefaultAlipayClient:
            config = AlipayClientConfig()
            config.server_url = url
            config.app_id = app_id
            config.sign_type = "RSA2"
            config.charset = "utf-8"
            config.app_private_key = pem_body(app_private_key_file)
            config.alipay_public_key = pem_body(alipay_public_key_file)
            # skip_sign also skips verifying answers: the verifier keeps it off.
            config.skip_sign = skip_sign
            # logger=None: the SDK would otherwise log the signed request with
            # the auth code, and Alipay's answer with the access token.
            return DefaultAlipayClient(alipay_client_config=config, logger=None)

        self._builder, self._client = client(skip_sign=True), client(skip_sign=False)
        key = serialization.load_pem_private_key(app_private_key_file.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the Alipay app key must be an RSA key")
        self._signing_key = key
        self._http = http
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._user_key = user_key

    def _prepare(self, auth_code: str) -> tuple[str, dict]:
        """(query string with the common parameters and `sign`, form parameters)."""
        _sdk_thread_state()
        request = AlipaySystemOauthTokenRequest()
        request.grant_type = "authorization_code"
        request.code = auth_code
        query_string, params = self._builder._DefaultAlipayClient__prepare_request(request)
        # What the SDK would have signed: every parameter, common ones from the
        # query string (quote_plus'd by the SDK, so parse_qsl gives them back).
        common = dict(parse_qsl(query_string, keep_blank_values=True))
        return f"{query_string}&{urlencode({'sign': self.sign(get_sign_content({**params, **common}))})}", params

    def sign(self, content: str) -> str:
        """RSA2 (SHA256withRSA, PKCS#1 v1.5) of `content`, base64, as the SDK makes it."""
        signature = self._signing_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")

    def _verify(self, body: bytes) -> str:
        """The signed `..._response` object's text; ResponseException if the
        signature is missing or wrong."""
        _sdk_thread_state()
        return self._client._DefaultAlipayClient__parse_response(body)

    async def user_key(self, auth_code: str) -> str:
        """The key of the Alipay user behind `auth_code` (see the module's
        docstring); UNAUTHENTICATED if Alipay refuses the code, its answer is
        not verifiably Alipay's or names no user, UNAVAILABLE if unreachable."""
        query_string, params = self._prepare(auth_code)
        try:
            async with self._http.post(
                f"{self._url}?{query_string}",
                data=urlencode(params, encoding="utf-8"),
                headers={"Content-Type": _FORM},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    raise ServiceError("UNAVAILABLE")
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raise ServiceError("UNAVAILABLE") from None
        try:
            content = self._verify(body)
            answer = AlipaySystemOauthTokenResponse()
            answer.parse_response_content(content)
        # The exception texts quote Alipay's answer (tokens): never re-raised or logged.
        except (ResponseException, ValueError):
            raise ServiceError("UNAUTHENTICATED") from None
        # A refusal comes as a signed error_response with code/sub_code.
        if not answer.is_success() or answer.code not in (None, "10000"):
            raise ServiceError("UNAUTHENTICATED")
        key = user_key(_alipay_id(answer.user_id), _alipay_id(answer.open_id), self._user_key)
        if key is None:
            raise ServiceError("UNAUTHENTICATED")
        return key


def _alipay_id(value: object) -> str | None:
    """An id as Alipay writes them (ASCII letters, digits, a few marks), else None."""
    if isinstance(value, str) and _ALIPAY_ID.fullmatch(value):
        return value
    return None


def user_key(user_id: str | None, open_id: str | None, preferred: UserKey) -> str | None:
    """The key of a user Alipay named by `user_id` and/or `open_id`:
    the `preferred` one if both came, else the one that came; None if neither."""
    keyed_by_open_id = f"{OPEN_ID_PREFIX}{open_id}" if open_id else None
    if preferred == "open_id":
        return keyed_by_open_id or user_id
    return user_id or keyed_by_open_id
