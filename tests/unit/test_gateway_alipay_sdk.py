"""The private steps of alipay-sdk-python the gateway relies on (pinned
version): request building and signing, without any network."""

from urllib.parse import parse_qs

import alipay.aop.api.DefaultAlipayClient as sdk_client
import pytest

from devstack.secrets import rsa_pair
from gateway.alipay_login import OPEN_ID_PREFIX, AlipayLogin, _alipay_id, pem_body, user_key


def test_sdk_still_has_the_private_steps_we_call():
    assert hasattr(sdk_client.DefaultAlipayClient, "_DefaultAlipayClient__prepare_request")
    assert hasattr(sdk_client.DefaultAlipayClient, "_DefaultAlipayClient__parse_response")


@pytest.fixture(scope="module")
def login(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    private, _ = rsa_pair(folder, "app")
    _, alipay_public = rsa_pair(folder, "alipay")
    assert "-----" not in pem_body(private)
    return AlipayLogin(None, "http://127.0.0.1:9/gateway.do", "2021000000000001", private, alipay_public, 1)


def test_signed_request_keeps_the_auth_code_out_of_the_url(login):
    query_string, params = login._prepare("the-auth-code")
    query = parse_qs(query_string)
    assert query["method"] == ["alipay.system.oauth.token"]
    assert query["app_id"] == ["2021000000000001"]
    assert query["sign_type"] == ["RSA2"] and query["sign"][0]
    # The code travels in the form body, not in a URL a proxy might log.
    assert "the-auth-code" not in query_string
    assert params == {"grant_type": "authorization_code", "code": "the-auth-code"}


def test_unsigned_answer_is_refused_by_the_sdk(login):
    from alipay.aop.api.exception.Exception import ResponseException

    with pytest.raises(ResponseException):
        login._verify(b'{"alipay_system_oauth_token_response":{"user_id":"2088000000000001"}}')


def test_our_signature_is_the_sdks(login):
    """PKCS#1 v1.5 is deterministic: `cryptography` must give the SDK's very signature."""
    from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2

    query_string, params = login._prepare("the-auth-code")
    query = {k: v[0] for k, v in parse_qs(query_string).items()}
    sign = query.pop("sign")
    content = get_sign_content({**params, **query})
    private_key = login._builder._DefaultAlipayClient__config.app_private_key
    assert sign == sign_with_rsa2(private_key, content, "utf-8")
    assert login.sign("中文 & = +") == sign_with_rsa2(private_key, "中文 & = +", "utf-8")


def test_signing_is_much_cheaper_than_the_sdks(login):
    """Why we sign ourselves: the SDK's pure-Python RSA holds the GIL ~20 ms a login."""
    import time

    from alipay.aop.api.util.SignatureUtils import sign_with_rsa2

    private_key = login._builder._DefaultAlipayClient__config.app_private_key
    started = time.perf_counter()
    for _ in range(3):
        sign_with_rsa2(private_key, "content", "utf-8")
    sdk = (time.perf_counter() - started) / 3
    started = time.perf_counter()
    for _ in range(3):
        login._prepare("the-auth-code")
    assert (time.perf_counter() - started) / 3 < sdk / 4


# -- which id keys the user ----------------------------------------------------------

OPEN_ID = "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"


@pytest.mark.parametrize(
    ("user_id", "open_id", "preferred", "key"),
    [
        ("2088000000000001", OPEN_ID, "user_id", "2088000000000001"),
        ("2088000000000001", OPEN_ID, "open_id", OPEN_ID_PREFIX + OPEN_ID),
        (None, OPEN_ID, "user_id", OPEN_ID_PREFIX + OPEN_ID),
        ("2088000000000001", None, "open_id", "2088000000000001"),
        (None, None, "user_id", None),
        (None, None, "open_id", None),
    ],
)
def test_user_key_is_the_preferred_id_of_those_that_came(user_id, open_id, preferred, key):
    assert user_key(user_id, open_id, preferred) == key


def test_an_open_id_key_cannot_be_a_user_id_key():
    # Even an open_id that looks like a user id keys another user.
    assert user_key(None, "2088000000000001", "open_id") != user_key("2088000000000001", None, "user_id")


@pytest.mark.parametrize("value", [None, "", 2088000000000001, "a b", "x" * 129, "ｏｐｅｎ", "id\n", ["x"]])
def test_malformed_ids_are_none(value):
    assert _alipay_id(value) is None


def test_well_formed_ids_pass():
    assert _alipay_id("2088000000000001") == "2088000000000001"
    assert _alipay_id(OPEN_ID) == OPEN_ID
