"""docs/partner-api.openapi.yaml against what runs: every request the
connectors send is to a path and method it names, and every answer the
company and operator simulators give matches its schema for that status."""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from platform_connectors.company import CompanyConnectorServicer
from platform_connectors.operator import OperatorConnectorServicer
from platform_connectors.upstream import Upstream
from simulators import companies, operators
from simulators.scenario import parse_scenario
from tests.integration.signed_partner import clients, signed
from yztc.partner_signing import RequestSigner
from yztc.v1 import company_connector_pb2 as cc
from yztc.v1 import operator_connector_pb2 as oc

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "partner-api.openapi.yaml"
DOC = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
REGISTRY = Registry().with_resource("urn:partner-api", Resource.from_contents(DOC, default_specification=DRAFT202012))


def _operation(path: str, method: str) -> tuple[str, dict[str, Any]] | None:
    """The OpenAPI path template and operation that `method` `path` falls under."""
    for template, item in DOC["paths"].items():
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = REGISTRY.resolver().lookup("urn:partner-api" + node["$ref"]).contents
    return node


def assert_answer_matches(path: str, method: str, status: int, body: Any) -> None:
    found = _operation(path, method)
    assert found is not None, f"{method} {path} is not in the partner API document"
    template, operation = found
    assert str(status) in operation["responses"], f"{method} {template}: status {status} is not documented"
    response = _resolve(operation["responses"][str(status)])
    schema = response["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = {"$ref": "urn:partner-api" + schema["$ref"]}
    else:
        schema = json.loads(json.dumps(schema).replace('"#/components', '"urn:partner-api#/components'))
    errors = list(Draft202012Validator(schema, registry=REGISTRY).iter_errors(body))
    assert not errors, f"{method} {template} {status}: {[e.message for e in errors]}"


def test_the_document_is_openapi_3_1_with_its_security_scheme_and_valid_schemas() -> None:
    assert DOC["openapi"].startswith("3.1.")
    assert DOC["security"] == [{"yztcSignature": []}]
    assert DOC["components"]["securitySchemes"]["yztcSignature"]["name"] == "Signature"
    assert all(server["url"].startswith("https://") for server in DOC["servers"])
    for schema in DOC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    # Every $ref resolves.
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(DOC))
    assert refs
    for ref in refs:
        REGISTRY.resolver().lookup("urn:partner-api" + ref)


# -- what the connectors call ---------------------------------------------------


@pytest.fixture
async def recording() -> AsyncIterator[tuple[list[tuple[str, str]], str]]:
    """A partner answering every kind of body the connectors expect, recording (method, path)."""
    seen: list[tuple[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.method, request.rel_url.raw_path))
        if request.path.endswith("/subscribers/verify"):
            return web.json_response({"result": "match"})
        if request.method == "POST":
            return web.json_response({"status": "accepted", "ticket": "t1"}, status=202)
        return web.json_response({"status": "pending"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(app) as server:
        yield seen, str(server.make_url("")).rstrip("/")


class _Context:
    def auth_context(self) -> dict:
        return {}

    async def abort(self, code, details: str = "") -> None:
        raise AssertionError(f"aborted {code} {details}")


async def test_every_call_the_connectors_make_is_in_the_document(recording) -> None:
    seen, base = recording
    signer = RequestSigner(Ed25519PrivateKey.generate(), "yztc-test-1")
    company = Upstream(base + "/base", 2.0, signer=signer)
    operator = Upstream(base + "/base", 2.0, signer=signer)
    await company.open()
    await operator.open()
    try:
        servicer = CompanyConnectorServicer(company, frozenset())
        accepted = await servicer.CountAccounts(cc.CountAccountsRequest(query_id="q1", phone="13800138000"), _Context())
        await servicer.PollCount(cc.PollCountRequest(query_id="q1", ticket=accepted.ticket), _Context())
        await OperatorConnectorServicer(operator, frozenset()).VerifySubscriber(
            oc.VerifySubscriberRequest(phone="13800138000", id_last6="12345X"), _Context()
        )
    finally:
        await company.close()
        await operator.close()
    assert len(seen) == 3
    called = {(m, p.removeprefix("/base")) for m, p in seen}
    for method, path in called:
        assert _operation(path, method) is not None, f"the connectors call {method} {path}, not in the document"
    # And the document names nothing the connectors do not call.
    documented = {(m.upper(), t) for t, item in DOC["paths"].items() for m in item}
    assert {(m, _operation(p, m)[0]) for m, p in called} == documented  # type: ignore[index]


# -- what the simulators answer -------------------------------------------------

SCENARIO = parse_scenario(
    {
        "accounts": {"13800138000": {"tencent": {"微信": 1, "QQ": 2}, "jd": 5}},
        "subscribers": [
            {"phone": "13800138000", "id_last6": "12345X", "operator": "cmcc", "status": "active"},
            {"phone": "13700137000", "id_last6": "678901", "operator": "cmcc", "status": "cancelled"},
            {"phone": "15000150000", "id_last6": "78901X", "operator": "ctcc", "status": "active"},
        ],
        "companies": {"jd": {"mode": "async", "latency_ms": 0}, "baidu": {"down": True}},
        "operators": {"cbn": {"down": True}},
    }
)
KEYS, SIGNERS = clients("tencent", "jd", "baidu", "cmcc", "ctcc", "cbn")


@pytest.fixture
async def company_sim() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(companies.create_app(SCENARIO, rng=random.Random(1), partner_keys=KEYS))) as c:
        yield c


@pytest.fixture
async def operator_sim() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(operators.create_app(SCENARIO, rng=random.Random(1), partner_keys=KEYS))) as c:
        yield c


async def _company(client: TestClient, company: str, method: str, sub: str, body: Any = None, **kw) -> int:
    """Calls the simulated `company` at `sub` (under its base), checks the answer against the document."""
    status, answer = await signed(client, method, f"/companies/{company}{sub}", SIGNERS.get(company), body, **kw)
    assert_answer_matches(sub, method, status, answer)
    return status


async def test_company_answers_match_the_document(company_sim: TestClient) -> None:
    count = {"request_id": "r1", "phone": "13800138000"}
    assert await _company(company_sim, "tencent", "POST", "/accounts/count", count) == 200
    assert await _company(company_sim, "tencent", "POST", "/accounts/count", {**count, "phone": "13900139000"}) == 409
    assert await _company(company_sim, "tencent", "POST", "/accounts/count", raw=b"[]") == 400
    assert await _company(company_sim, "baidu", "POST", "/accounts/count", count) == 503
    status, accepted = await signed(company_sim, "POST", "/companies/jd/accounts/count", SIGNERS["jd"], count)
    assert status == 202
    assert_answer_matches("/accounts/count", "POST", status, accepted)
    poll = f"/accounts/count/{accepted['ticket']}"
    assert await _company(company_sim, "jd", "GET", poll) == 200  # pending
    status, done = await signed(company_sim, "GET", f"/companies/jd{poll}", SIGNERS["jd"])
    assert (status, done["status"]) == (200, "done")
    assert_answer_matches(poll, "GET", status, done)
    assert await _company(company_sim, "jd", "GET", "/accounts/count/nope") == 404
    status, refused = await signed(company_sim, "POST", "/companies/tencent/accounts/count", None, count)
    assert status == 401
    assert_answer_matches("/accounts/count", "POST", status, refused)


@pytest.mark.parametrize(
    ("operator", "phone", "id_last6", "status"),
    [
        ("cmcc", "13800138000", "12345X", 200),
        ("cmcc", "13800138000", "000000", 200),
        ("cmcc", "13700137000", "678901", 200),
        ("cmcc", "15000150000", "78901X", 200),
        ("ctcc", "13500135000", "123456", 200),
        ("cbn", "19200192000", "567890", 503),
        ("cmcc", "138", "12345X", 400),
    ],
)
async def test_operator_answers_match_the_document(
    operator_sim: TestClient, operator: str, phone: str, id_last6: str, status: int
) -> None:
    path = f"/operators/{operator}/subscribers/verify"
    got, answer = await signed(operator_sim, "POST", path, SIGNERS[operator], {"phone": phone, "id_last6": id_last6})
    assert got == status
    assert_answer_matches("/subscribers/verify", "POST", got, answer)


async def test_an_answer_off_the_document_would_be_caught() -> None:
    """The check itself can fail: a ticket the document forbids, a count below zero."""
    with pytest.raises(AssertionError, match="does not match"):
        assert_answer_matches("/accounts/count", "POST", 202, {"status": "accepted", "ticket": "../x"})
    with pytest.raises(AssertionError, match="minimum"):
        assert_answer_matches("/accounts/count", "POST", 200, {"status": "done", "total": -1})
    with pytest.raises(AssertionError, match="not documented"):
        assert_answer_matches("/subscribers/verify", "POST", 302, {})
