"""The Alipay OpenAPI simulator against the real alipay-sdk-python.

The SDK cannot reach a server_url with an explicit port (its
get_http_connection crashes), so requests are built and answers verified by
the SDK's own private helpers, with aiohttp carrying them in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.constant.CommonConstants import THREAD_LOCAL
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.exception.Exception import ResponseException
from alipay.aop.api.request.AlipaySystemOauthTokenRequest import AlipaySystemOauthTokenRequest
from alipay.aop.api.response.AlipaySystemOauthTokenResponse import AlipaySystemOauthTokenResponse
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators import alipay_openapi
from simulators.alipay_openapi import open_id_for
from simulators.scenario import Scenario, parse_scenario

APP_ID = "2021000000000001"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"demo-auth-code": "2088000000000001"}}})


def _pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _body(pem: bytes) -> str:
    """The PEM body without header lines: the form the SDK takes keys in."""
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    """Our app's key pair, the simulated Alipay's, and a stranger's."""
    return {name: rsa.generate_private_key(public_exponent=65537, key_size=2048) for name in ("app", "alipay", "rogue")}


Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def start(keys: dict[str, rsa.RSAPrivateKey], tmp_path: Path) -> AsyncIterator[Start]:
    """Serves an Alipay simulator with key files as `python -m simulators` reads them."""
    (tmp_path / "app-public.pem").write_bytes(_spki(keys["app"]))
    (tmp_path / "alipay-private.pem").write_bytes(_pkcs1(keys["alipay"]))
    clients: list[TestClient] = []

    async def _start(scenario: Scenario = SCENARIO, **options: object) -> TestClient:
        app = alipay_openapi.create_app(
            scenario,
            app_id=APP_ID,
            app_public_key=str(tmp_path / "app-public.pem"),
            alipay_private_key=tmp_path / "alipay-private.pem",
            **options,
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield _start
    for client in clients:
        await client.close()


@pytest.fixture
async def http(start: Start) -> TestClient:
    return await start()


def _sdk(
    keys: dict[str, rsa.RSAPrivateKey], http: TestClient, signer: str = "app", app_id: str = APP_ID
) -> DefaultAlipayClient:
    config = AlipayClientConfig()
    config.server_url = str(http.make_url("/gateway.do"))
    config.app_id = app_id
    config.app_private_key = _body(_pkcs1(keys[signer]))
    config.alipay_public_key = _body(_spki(keys["alipay"]))
    return DefaultAlipayClient(alipay_client_config=config)


def _request(code: str) -> AlipaySystemOauthTokenRequest:
    request = AlipaySystemOauthTokenRequest()
    request.grant_type = "authorization_code"
    request.code = code
    return request


def _prepare(sdk: DefaultAlipayClient, code: str) -> tuple[str, dict[str, str]]:
    THREAD_LOCAL.uuid = "test"  # the SDK's error messages read it
    return sdk._DefaultAlipayClient__prepare_request(_request(code))  # type: ignore[attr-defined]


async def _post(http: TestClient, query: str, form: dict[str, str]) -> bytes:
    # As the SDK's do_post sends it: common parameters in the URL, the rest as a form.
    async with http.post(f"/gateway.do?{query}" if query else "/gateway.do", data=form) as resp:
        assert resp.status == 200
        return await resp.read()


def _parse(sdk: DefaultAlipayClient, body: bytes) -> AlipaySystemOauthTokenResponse:
    """What DefaultAlipayClient.execute would return, verified with Alipay's public key."""
    content = sdk._DefaultAlipayClient__parse_response(body)  # type: ignore[attr-defined]
    response = AlipaySystemOauthTokenResponse()
    response.parse_response_content(content)
    return response


async def _oauth(http: TestClient, sdk: DefaultAlipayClient, code: str) -> AlipaySystemOauthTokenResponse:
    query, form = _prepare(sdk, code)
    return _parse(sdk, await _post(http, query, form))


async def _mint(http: TestClient, user_id: str) -> str:
    async with http.post("/sim/auth-codes", json={"user_id": user_id}) as resp:
        assert resp.status == 200
        return (await resp.json())["auth_code"]


async def test_demo_auth_code_gives_the_user_id_and_is_reusable(http: TestClient, keys: dict) -> None:
    sdk = _sdk(keys, http)
    for _ in range(2):
        response = await _oauth(http, sdk, "demo-auth-code")
        assert response.is_success()
        assert response.user_id == "2088000000000001"
        assert response.open_id and response.access_token and response.refresh_token
        assert response.expires_in == 1296000 and response.re_expires_in == 2592000


async def test_minted_code_works_once(http: TestClient, keys: dict) -> None:
    sdk = _sdk(keys, http)
    code = await _mint(http, "2088000000000042")
    first = await _oauth(http, sdk, code)
    assert first.is_success() and first.user_id == "2088000000000042"
    again = await _oauth(http, sdk, code)
    assert not again.is_success()
    assert (again.code, again.sub_code) == ("40002", "isv.code-invalid")


async def test_open_id_is_stable_per_user(http: TestClient, keys: dict) -> None:
    sdk = _sdk(keys, http)
    first = await _oauth(http, sdk, await _mint(http, "2088000000000042"))
    second = await _oauth(http, sdk, await _mint(http, "2088000000000042"))
    other = await _oauth(http, sdk, await _mint(http, "2088000000000043"))
    assert first.open_id == second.open_id != other.open_id


async def test_unknown_code_is_refused(http: TestClient, keys: dict) -> None:
    response = await _oauth(http, _sdk(keys, http), "no-such-code")
    assert not response.is_success()
    assert (response.code, response.msg, response.sub_code, response.sub_msg) == (
        "40002",
        "Invalid Arguments",
        "isv.code-invalid",
        "授权码code无效",
    )


async def test_request_signed_with_another_key_is_refused_and_spends_no_code(http: TestClient, keys: dict) -> None:
    code = await _mint(http, "2088000000000042")
    rogue = await _oauth(http, _sdk(keys, http, signer="rogue"), code)
    assert (rogue.code, rogue.sub_code) == ("40002", "isv.invalid-signature")
    assert rogue.user_id is None
    assert (await _oauth(http, _sdk(keys, http), code)).user_id == "2088000000000042"


async def test_parameter_changed_after_signing_is_refused(http: TestClient, keys: dict) -> None:
    sdk = _sdk(keys, http)
    query, form = _prepare(sdk, "some-other-code")
    form["code"] = "demo-auth-code"
    response = _parse(sdk, await _post(http, query, form))
    assert response.sub_code == "isv.invalid-signature"


async def test_parameters_may_all_come_in_the_form_body(http: TestClient, keys: dict) -> None:
    sdk = _sdk(keys, http)
    THREAD_LOCAL.uuid = "test"
    common, business = sdk._DefaultAlipayClient__prepare_request_params(_request("demo-auth-code"))  # type: ignore[attr-defined]
    response = _parse(sdk, await _post(http, "", {**common, **business}))
    assert response.is_success() and response.user_id == "2088000000000001"


async def test_wrong_app_id_is_refused(http: TestClient, keys: dict) -> None:
    response = await _oauth(http, _sdk(keys, http, app_id="2021000000000999"), "demo-auth-code")
    assert response.sub_code == "isv.invalid-app-id"


async def test_missing_signature_is_refused(http: TestClient, keys: dict) -> None:
    sdk = _sdk(keys, http)
    THREAD_LOCAL.uuid = "test"
    common, business = sdk._DefaultAlipayClient__prepare_request_params(_request("demo-auth-code"))  # type: ignore[attr-defined]
    del common["sign"]
    response = _parse(sdk, await _post(http, "", {**common, **business}))
    assert (response.code, response.sub_code) == ("40001", "isv.missing-signature")


async def test_tampered_answers_fail_the_sdks_verification(start: Start, keys: dict) -> None:
    for http in (await start(tamper=True), await start(parse_scenario({"alipay": {"tamper_signatures": True}}))):
        sdk = _sdk(keys, http)
        query, form = _prepare(sdk, "demo-auth-code")
        body = await _post(http, query, form)
        with pytest.raises(ResponseException, match="sign verify failed"):
            sdk._DefaultAlipayClient__parse_response(body)  # type: ignore[attr-defined]


async def test_answer_is_verified_with_the_right_alipay_key_only(http: TestClient, keys: dict) -> None:
    """A client holding a wrong Alipay public key must not accept the answer."""
    sdk = _sdk(keys, http)
    query, form = _prepare(sdk, "demo-auth-code")
    body = await _post(http, query, form)
    wrong = _sdk(keys, http)
    wrong._DefaultAlipayClient__config.alipay_public_key = _body(_spki(keys["rogue"]))  # type: ignore[attr-defined]
    with pytest.raises(ResponseException):
        wrong._DefaultAlipayClient__parse_response(body)  # type: ignore[attr-defined]


async def test_minting_needs_an_alipay_user_id(http: TestClient) -> None:
    async with http.post("/sim/auth-codes", json={"user_id": "13800138000"}) as resp:
        assert resp.status == 400


@pytest.mark.parametrize(
    ("ids", "user_id", "open_id"),
    [("both", True, True), ("user_id", True, False), ("open_id", False, True)],
)
async def test_scenario_says_which_ids_a_login_answers_with(start: Start, keys: dict, ids, user_id, open_id) -> None:
    scenario = parse_scenario({"alipay": {"auth_codes": {"demo-auth-code": "2088000000000001"}, "ids": ids}})
    for http in (await start(scenario), await start(SCENARIO, ids=ids)):
        response = await _oauth(http, _sdk(keys, http), "demo-auth-code")
        assert response.is_success() and response.access_token
        assert (response.user_id == "2088000000000001") is user_id and (response.user_id is None) is not user_id
        assert (response.open_id == open_id_for(APP_ID, "2088000000000001")) is open_id
        assert (response.open_id is None) is not open_id


async def test_ids_must_be_known(start: Start) -> None:
    with pytest.raises(ValueError, match="ids"):
        await start(ids="union_id")
