"""Both front doors answer an identifier string the same (issue 17, case 2):
the gateway's HTTP API and the aggregator's gRPC channel API, on the stack
as `make run` starts it, each field through yztc/identifiers.py.

The probe is a query with a wrong code: INVALID_ARGUMENT when a field is
refused, CODE_INVALID when every field is of the form (a wrong code is
CODE_INVALID whatever the number's state: state before proof). It sends no
SMS and starts no query. The HTTP side is a user of its own (minted by the
Alipay simulator), the gRPC side a requester id per call, so the probes use
up no other test's requester limits.
"""

from __future__ import annotations

import itertools

import aiohttp
import grpc
import pytest

from tests.e2e.channel_client import channel
from tests.e2e.conftest_gateway import alipay_simulator_url, gateway_url, post_json
from yztc.errors import ServiceError
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

PHONE, ID_LAST6, WRONG_CODE = "13800138000", "12345X", "000001"
ACCEPTED, REFUSED = "CODE_INVALID", "INVALID_ARGUMENT"

# (phone, id_last6, code, what both doors answer)
CASES = {
    # The examples: gRPC accepted the first and HTTP refused it; both
    # accepted the second (str.strip and \s take U+3000 and U+001F alike).
    "phone with U+3000 ideographic spaces": ("138\u30000013\u30008000", ID_LAST6, WRONG_CODE, ACCEPTED),
    "phone with U+001F unit separator": ("13800138000\u001f", ID_LAST6, WRONG_CODE, REFUSED),
    "phone with a tab (Cc)": ("138\t0013\t8000", ID_LAST6, WRONG_CODE, REFUSED),
    "phone with U+200B zero-width space (Cf)": ("138\u200b00138000", ID_LAST6, WRONG_CODE, REFUSED),
    "phone after U+FEFF byte order mark (Cf)": ("\ufeff13800138000", ID_LAST6, WRONG_CODE, REFUSED),
    "phone in full-width digits": ("１３８００１３８０００", ID_LAST6, WRONG_CODE, ACCEPTED),
    "phone with +86, spaces and hyphens": ("+86 138-0013-8000", ID_LAST6, WRONG_CODE, ACCEPTED),
    "phone in Arabic-Indic digits": ("١٣٨٠٠١٣٨٠٠٠", ID_LAST6, WRONG_CODE, REFUSED),
    "ID six with full-width Ｘ": (PHONE, "12345Ｘ", WRONG_CODE, ACCEPTED),
    "ID six with U+200B (Cf)": (PHONE, "12345\u200b", WRONG_CODE, REFUSED),
    "code in full-width digits": (PHONE, ID_LAST6, "０００００１", ACCEPTED),
    "code with U+0000 (Cc)": (PHONE, ID_LAST6, "00000\u0000", REFUSED),
}

_requesters = itertools.count(1)


@pytest.fixture(scope="module")
def token(stack) -> str:
    """A session of a user of this module's own."""
    status, minted = post_json(f"{alipay_simulator_url(stack)}/sim/auth-codes", {"user_id": "2088000000017002"})
    assert status == 200, minted
    status, session = post_json(f"{gateway_url(stack)}/api/v1/sessions", {"auth_code": minted["auth_code"]})
    assert status == 200, session
    return session["token"]


async def _over_http(stack, token: str, phone: str, id_last6: str, code: str) -> str:
    body = {"phone": phone, "id_last6": id_last6, "code": code, "consent": True}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gateway_url(stack)}/api/v1/queries", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            answer = await response.json()
    assert response.status != 202, "a wrong code was accepted"
    return answer["error"]["code"]


async def _over_grpc(stack, phone: str, id_last6: str, code: str) -> str:
    request = pb.SubmitQueryRequest(
        phone=phone, id_last6=id_last6, code=code, consent=True, requester_id=f"doors-{next(_requesters)}"
    )
    async with channel(stack) as ch:
        try:
            await account_query_pb2_grpc.AccountQueryServiceStub(ch).SubmitQuery(request, timeout=10)
        except grpc.aio.AioRpcError as error:
            return ServiceError.from_grpc_error(error).code
    raise AssertionError("a wrong code was accepted")


@pytest.mark.parametrize(("phone", "id_last6", "code", "expected"), list(CASES.values()), ids=list(CASES))
async def test_both_doors_give_the_same_answer(stack, token, phone, id_last6, code, expected):
    http_answer = await _over_http(stack, token, phone, id_last6, code)
    grpc_answer = await _over_grpc(stack, phone, id_last6, code)
    assert (http_answer, grpc_answer) == (expected, expected)
