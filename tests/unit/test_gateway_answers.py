"""Proto answers of the aggregator mapped to the CONTRACT's JSON, and the
OpenAPI document's consistency."""

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from gateway import answers
from gateway.aggregator_client import enterprises_json, query_json, submitted_json
from gateway.middlewares import error_response
from gateway.openapi import OPENAPI
from yztc.errors import CATALOGUE, ServiceError
from yztc.v1 import account_query_pb2 as pb


def test_query_json_enums_counts_and_time():
    query = pb.Query(
        query_id="q",
        status=pb.QUERY_STATUS_COMPLETED,
        phone="138****0000",
        sms_state=pb.SMS_STATE_SENT,
        enterprises=[
            pb.EnterpriseResult(id="alipay", name="支付宝", state=pb.ENTERPRISE_STATE_DONE, count=0),
            # A count set while not DONE is not shown: CONTRACT says null until DONE.
            pb.EnterpriseResult(id="jd", name="京东", state=pb.ENTERPRISE_STATE_PENDING, count=5),
            pb.EnterpriseResult(id="douyin", name="抖音", state=pb.ENTERPRISE_STATE_DONE),
        ],
    )
    query.deliver_by.FromDatetime(dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC))
    body = query_json(query)
    assert body["status"] == "COMPLETED"
    assert body["deliver_by"] == "2026-01-02T03:04:05Z"
    assert [(e["state"], e["count"]) for e in body["enterprises"]] == [("DONE", 0), ("PENDING", None), ("DONE", None)]
    assert body["sms"] == {"state": "SENT"}


def test_submitted_and_enterprises_json():
    answer = pb.SubmitQueryResponse(query_id="q", status=pb.QUERY_STATUS_IN_PROGRESS)
    assert submitted_json(answer) == {"query_id": "q", "status": "IN_PROGRESS", "deliver_by": None}
    listing = pb.ListEnterprisesResponse(
        enterprises=[pb.Enterprise(id="jd", name="京东", hotline="950618", detail_and_unbind="…")]
    )
    assert enterprises_json(listing)["enterprises"][0]["hotline"] == "950618"


def test_error_response_shape_and_headers():
    response = error_response(ServiceError("QUERY_LIMITED", retry_after=3600))
    assert response.status == 429
    assert response.headers["Retry-After"] == "3600"
    body = json.loads(response.text)
    assert body == {
        "error": {"code": "QUERY_LIMITED", "message": CATALOGUE["QUERY_LIMITED"].message, "retry_after": 3600}
    }
    assert "该号码" in response.text  # UTF-8, not \u escapes
    assert error_response(ServiceError("UNAUTHENTICATED")).headers["WWW-Authenticate"] == "Bearer"


def test_openapi_security_matches_the_contract():
    # CONTRACT: every endpoint but logging in, the enterprises, the document and the probes needs a token.
    public = {("/api/v1/sessions", "post"), "/api/v1/enterprises", "/api/v1/openapi.json", "/healthz", "/readyz"}
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            assert (operation["security"] == []) == (path in public or (path, method) in public), (path, method)


def test_openapi_lists_statuses_of_the_catalogue():
    queries = OPENAPI["paths"]["/api/v1/queries"]["post"]["responses"]
    assert {"202", "400", "401", "409", "413", "415", "422", "429", "503"} <= set(queries)
    assert "Retry-After" in queries["429"]["headers"]
    assert "503" not in OPENAPI["paths"]["/healthz"]["get"]["responses"]


# -- what the gateway builds is what the document's answer models say ------------------


def _conforms(model: type[answers.Answer], body: dict) -> None:
    """Validated as the JSON a client gets (strict: no member or type the model lacks)."""
    model.model_validate_json(json.dumps(body), strict=True)


def test_query_answers_conform_to_their_models():
    query = pb.Query(
        query_id="q",
        status=pb.QUERY_STATUS_PARTIAL,
        phone="138****0000",
        sms_state=pb.SMS_STATE_DELIVERED,
        enterprises=[
            pb.EnterpriseResult(
                id="tencent",
                name="腾讯",
                state=pb.ENTERPRISE_STATE_DONE,
                count=3,
                apps=[pb.AppCount(name="微信", count=1), pb.AppCount(name="QQ", count=2)],
            ),
            pb.EnterpriseResult(id="jd", name="京东", state=pb.ENTERPRISE_STATE_PENDING),
        ],
    )
    _conforms(answers.Query, query_json(query))  # deliver_by unset: null
    query.deliver_by.FromDatetime(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    _conforms(answers.Query, query_json(query))
    accepted = pb.SubmitQueryResponse(query_id="q", status=pb.QUERY_STATUS_IN_PROGRESS)
    _conforms(answers.QueryAccepted, submitted_json(accepted))
    listing = pb.ListEnterprisesResponse(
        enterprises=[pb.Enterprise(id="jd", name="京东", hotline="950618", detail_and_unbind="…")]
    )
    _conforms(answers.Enterprises, enterprises_json(listing))


def test_error_answers_conform_to_their_model():
    for error in (
        ServiceError("QUERY_LIMITED", retry_after=3600),
        ServiceError("QUERY_IN_PROGRESS", query_id="q-running"),
        ServiceError("INVALID_ARGUMENT", detail="手机号码（phone）格式有误"),
    ):
        _conforms(answers.Error, json.loads(error_response(error).text))
    with pytest.raises(ValidationError):
        _conforms(answers.Error, {"error": {"code": "NO_SUCH_CODE", "message": "…"}})
