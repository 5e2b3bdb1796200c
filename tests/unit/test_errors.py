import grpc
import pytest
from google.rpc import error_details_pb2

from yztc.errors import CATALOGUE, ServiceError

CONTRACT = {
    "INVALID_ARGUMENT": 400,
    "CONSENT_REQUIRED": 400,
    "UNAUTHENTICATED": 401,
    "NOT_FOUND": 404,
    "QUERY_IN_PROGRESS": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "CODE_INVALID": 422,
    "CODE_EXPIRED": 422,
    "VERIFICATION_FAILED": 422,
    "NUMBER_CANCELLED": 422,
    "RATE_LIMITED": 429,
    "QUERY_LIMITED": 429,
    "UNAVAILABLE": 503,
}


@pytest.mark.parametrize("code,http", CONTRACT.items())
def test_catalogue_matches_contract(code, http):
    assert CATALOGUE[code].http == http
    assert any("\u4e00" <= ch <= "\u9fff" for ch in CATALOGUE[code].message)


def test_json_shape():
    body = ServiceError("RATE_LIMITED", retry_after=42).to_json()
    assert body["error"]["code"] == "RATE_LIMITED" and body["error"]["retry_after"] == 42
    assert "query_id" not in body["error"]


def test_grpc_status_carries_error_info():
    status = ServiceError("QUERY_IN_PROGRESS", query_id="abc").to_grpc_status()
    assert status.code == grpc.StatusCode.ALREADY_EXISTS
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    from google.rpc import status_pb2

    decoded = status_pb2.Status.FromString(details)
    info = error_details_pb2.ErrorInfo()
    decoded.details[0].Unpack(info)
    assert info.reason == "QUERY_IN_PROGRESS" and info.metadata["query_id"] == "abc"


def test_unknown_code_is_a_programming_error():
    with pytest.raises(ValueError):
        ServiceError("NOPE")
