"""The private steps of alipay-sdk-python the gateway relies on (pinned
version): request building and signing, without any network."""
from urllib.parse import parse_qs

import alipay.aop.api.DefaultAlipayClient as sdk_client
import pytest

from devstack.secrets import rsa_pair
from gateway.alipay_login import AlipayLogin, pem_body


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
