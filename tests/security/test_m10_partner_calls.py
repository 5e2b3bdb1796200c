"""M10 (security review): the connectors called partners unauthenticated,
over any scheme, followed redirects with the phone and ID six in the body,
spliced the company's ticket into the URL path, and read answers of any
size. Each is reproduced here against real local HTTP servers and shown refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack import pki
from devstack.secrets import partner_key, partner_key_id
from platform_connectors.company import CompanyConnectorServicer
from platform_connectors.operator import OperatorConnectorServicer
from platform_connectors.settings import ConnectorSettings
from platform_connectors.upstream import Upstream, UpstreamError
from simulators import companies, operators
from simulators.scenario import parse_scenario
from yztc.partner_signing import PartnerKeyRing, RequestSigner
from yztc.v1 import company_connector_pb2 as cc
from yztc.v1 import operator_connector_pb2 as oc

ROOT = Path(__file__).resolve().parents[2]
PHONE, ID_SIX = "13800138000", "12345X"


# -- a partner that records what reaches it ----------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class RecordingPartner:
    """A real HTTP server on a free port: every request is recorded, then
    answered by `answer` (default 200 with an empty JSON object)."""

    answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
    requests: list[Recorded] = field(default_factory=list)
    server: TestServer | None = None

    async def _any(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.rel_url.raw_path, body, dict(request.headers)))
        if self.answer is not None:
            return await self.answer(request)
        return web.json_response({})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def partners() -> AsyncIterator[Callable[..., Awaitable[tuple[RecordingPartner, str]]]]:
    started: list[RecordingPartner] = []

    async def start(answer=None) -> tuple[RecordingPartner, str]:
        partner = RecordingPartner(answer)
        started.append(partner)
        return partner, await partner.start()

    yield start
    for partner in started:
        await partner.stop()


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class Context:
    """The servicer's view of a call (a plaintext one: no caller certificate to check)."""

    def auth_context(self) -> dict:
        return {}

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)


async def _upstream(base: str, **options) -> Upstream:
    signer = RequestSigner(Ed25519PrivateKey.generate(), "yztc-test-1")
    upstream = Upstream(base, 2.0, signer=signer, **options)
    await upstream.open()
    return upstream


# -- redirects ----------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_and_the_body_goes_nowhere_else(partners, status: int) -> None:
    elsewhere, elsewhere_url = await partners()

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": f"{elsewhere_url}/x"})

    operator, base = await partners(redirect)
    upstream = await _upstream(base + "/operators/cmcc")
    try:
        servicer = OperatorConnectorServicer(upstream, frozenset())
        with pytest.raises(Aborted) as failed:
            await servicer.VerifySubscriber(oc.VerifySubscriberRequest(phone=PHONE, id_last6=ID_SIX), Context())
    finally:
        await upstream.close()
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE and "redirect" in failed.value.details
    assert PHONE not in failed.value.details and ID_SIX not in failed.value.details
    # Sent once, to the operator only; nothing reached the redirect's target.
    assert [(r.method, r.path) for r in operator.requests] == [("POST", "/operators/cmcc/subscribers/verify")]
    assert json.loads(operator.requests[0].body) == {"phone": PHONE, "id_last6": ID_SIX}
    assert elsewhere.requests == []


# -- the company's ticket -----------------------------------------------------


@pytest.mark.parametrize(
    "ticket",
    ["../../other/path", "..", "a/b", "a%2Fb", "t?x=1", "t#f", "t x", "票", "t" * 129, "t\n"],
)
async def test_a_malformed_ticket_reaches_no_path_at_all(partners, ticket: str) -> None:
    company, base = await partners()
    upstream = await _upstream(base + "/companies/jd")
    try:
        servicer = CompanyConnectorServicer(upstream, frozenset())
        with pytest.raises(Aborted) as failed:
            await servicer.PollCount(cc.PollCountRequest(query_id="q1", ticket=ticket), Context())
    finally:
        await upstream.close()
    assert failed.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert company.requests == []


async def test_a_valid_ticket_is_polled_at_its_own_path_only(partners) -> None:
    async def pending(request: web.Request) -> web.Response:
        return web.json_response({"status": "pending"})

    company, base = await partners(pending)
    upstream = await _upstream(base + "/companies/jd")
    try:
        answer = await CompanyConnectorServicer(upstream, frozenset()).PollCount(
            cc.PollCountRequest(query_id="q1", ticket="Ab_9-" + "x" * 123), Context()
        )
    finally:
        await upstream.close()
    assert answer.outcome == cc.CountAccountsResponse.OUTCOME_ACCEPTED
    assert [(r.method, r.path) for r in company.requests] == [("GET", "/companies/jd/accounts/count/Ab_9-" + "x" * 123)]


async def test_a_company_answering_a_malformed_ticket_is_a_partner_failure(partners) -> None:
    async def accepted(request: web.Request) -> web.Response:
        return web.json_response({"status": "accepted", "ticket": "../../admin"}, status=202)

    _, base = await partners(accepted)
    upstream = await _upstream(base + "/companies/jd")
    try:
        with pytest.raises(Aborted) as failed:
            await CompanyConnectorServicer(upstream, frozenset()).CountAccounts(
                cc.CountAccountsRequest(query_id="q1", phone=PHONE), Context()
            )
    finally:
        await upstream.close()
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE


# -- answer size ----------------------------------------------------------------


async def _huge(request: web.Request) -> web.Response:
    return web.json_response({"status": "done", "total": 1, "apps": [{"name": "x" * 1_000_000, "count": 1}]})


async def _huge_chunked(request: web.Request) -> web.StreamResponse:
    # No Content-Length: the size shows only while reading.
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b'{"status": "done", "total": 1, "apps": [{"name": "')
    try:
        for _ in range(64):
            await response.write(b"x" * 65536)
        await response.write(b'", "count": 1}]}')
    except (ConnectionResetError, RuntimeError):
        pass  # the connector stopped reading, as it should
    return response


@pytest.mark.parametrize("answer", [_huge, _huge_chunked], ids=["content-length", "chunked"])
async def test_an_oversized_answer_is_refused(partners, answer) -> None:
    _, base = await partners(answer)
    upstream = await _upstream(base + "/companies/tencent", max_answer_bytes=65536)
    try:
        with pytest.raises(UpstreamError) as failed:
            await upstream.call("POST", "/accounts/count", {"request_id": "q1", "phone": PHONE})
    finally:
        await upstream.close()
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE and "too large" in failed.value.why


async def test_an_answer_within_the_cap_is_read(partners) -> None:
    async def done(request: web.Request) -> web.Response:
        return web.json_response({"status": "done", "total": 2, "apps": [{"name": "微信", "count": 2}]})

    _, base = await partners(done)
    upstream = await _upstream(base + "/companies/tencent", max_answer_bytes=65536)
    try:
        answer = await CompanyConnectorServicer(upstream, frozenset()).CountAccounts(
            cc.CountAccountsRequest(query_id="q1", phone=PHONE), Context()
        )
    finally:
        await upstream.close()
    assert answer.count == 2 and [(a.name, a.count) for a in answer.apps] == [("微信", 2)]


# -- the connector signs, the simulators check -----------------------------------

SCENARIO = parse_scenario(
    {
        "accounts": {PHONE: {"tencent": {"微信": 1, "QQ": 2}}},
        "subscribers": [{"phone": PHONE, "id_last6": ID_SIX, "operator": "cmcc", "status": "active"}],
    }
)


@dataclass
class Simulated:
    companies: str
    operators: str
    signers: dict[str, RequestSigner]
    clock: list[float]


@pytest.fixture
async def simulated() -> AsyncIterator[Simulated]:
    """The company and operator simulators as `make run` serves them, on real
    ports, each accepting only its own connector's key; `clock[0]` is their wall clock."""
    keys = {e: Ed25519PrivateKey.generate() for e in ("tencent", "jd", "cmcc")}
    ring = PartnerKeyRing({e: {f"yztc-{e}-1": k.public_key()} for e, k in keys.items()})
    clock = [time.time()]
    company_server = TestServer(
        companies.create_app(SCENARIO, rng=random.Random(1), partner_keys=ring, now=lambda: clock[0])
    )
    operator_server = TestServer(
        operators.create_app(SCENARIO, rng=random.Random(1), partner_keys=ring, now=lambda: clock[0])
    )
    await company_server.start_server()
    await operator_server.start_server()
    try:
        yield Simulated(
            companies=str(company_server.make_url("")).rstrip("/"),
            operators=str(operator_server.make_url("")).rstrip("/"),
            signers={e: RequestSigner(k, f"yztc-{e}-1", now=lambda: clock[0]) for e, k in keys.items()},
            clock=clock,
        )
    finally:
        await company_server.close()
        await operator_server.close()


async def test_the_connectors_signed_calls_are_answered_by_the_simulators(simulated: Simulated) -> None:
    company = Upstream(simulated.companies + "/companies/tencent", 2.0, signer=simulated.signers["tencent"])
    operator = Upstream(simulated.operators + "/operators/cmcc", 2.0, signer=simulated.signers["cmcc"])
    await company.open()
    await operator.open()
    try:
        count = await CompanyConnectorServicer(company, frozenset()).CountAccounts(
            cc.CountAccountsRequest(query_id="q1", phone=PHONE), Context()
        )
        verdict = await OperatorConnectorServicer(operator, frozenset()).VerifySubscriber(
            oc.VerifySubscriberRequest(phone=PHONE, id_last6=ID_SIX), Context()
        )
    finally:
        await company.close()
        await operator.close()
    assert count.count == 3
    assert verdict.verdict == oc.VerifySubscriberResponse.VERDICT_MATCH


async def _raw(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + path, data=body, headers={"Content-Type": "application/json", **headers}) as r:
            return r.status, await r.json()


VERIFY = "/operators/cmcc/subscribers/verify"
VERIFY_BODY = json.dumps({"phone": PHONE, "id_last6": ID_SIX}).encode()


async def test_unsigned_forged_stale_and_replayed_requests_are_refused_without_data(simulated: Simulated) -> None:
    base = simulated.operators
    cmcc = simulated.signers["cmcc"]

    def refused(answer: tuple[int, dict], reason: str) -> bool:
        status, body = answer
        return status == 401 and body == {"error": "unauthenticated", "reason": reason}

    # Unsigned.
    assert refused(await _raw(base, VERIFY, VERIFY_BODY, {}), "unsigned")
    # Forged: signed by a key the operator was not given, under cmcc's key id.
    forger = RequestSigner(Ed25519PrivateKey.generate(), "yztc-cmcc-1")
    assert refused(await _raw(base, VERIFY, VERIFY_BODY, forger.headers("POST", VERIFY, "", VERIFY_BODY)), "signature")
    # Another connector's key (jd's) at cmcc.
    jd = simulated.signers["jd"].headers("POST", VERIFY, "", VERIFY_BODY)
    assert refused(await _raw(base, VERIFY, VERIFY_BODY, jd), "unknown key")
    # A good signature over another body (the ID six swapped).
    good = cmcc.headers("POST", VERIFY, "", VERIFY_BODY)
    other = json.dumps({"phone": PHONE, "id_last6": "000000"}).encode()
    assert refused(await _raw(base, VERIFY, other, good), "digest")
    # Stale: signed six minutes ago.
    simulated.clock[0] -= 360
    stale = cmcc.headers("POST", VERIFY, "", VERIFY_BODY)
    simulated.clock[0] += 360
    assert refused(await _raw(base, VERIFY, VERIFY_BODY, stale), "stale")
    # Fresh: answered once; the same request again is a replay.
    status, answer = await _raw(base, VERIFY, VERIFY_BODY, good)
    assert (status, answer) == (200, {"result": "match"})
    assert refused(await _raw(base, VERIFY, VERIFY_BODY, good), "replayed")


async def test_a_company_without_keys_refuses_everyone() -> None:
    server = TestServer(companies.create_app(SCENARIO))
    await server.start_server()
    try:
        path = "/companies/tencent/accounts/count"
        body = json.dumps({"request_id": "r1", "phone": PHONE}).encode()
        signer = RequestSigner(Ed25519PrivateKey.generate(), "yztc-tencent-1")
        status, answer = await _raw(
            str(server.make_url("")).rstrip("/"), path, body, signer.headers("POST", path, "", body)
        )
    finally:
        await server.close()
    assert status == 401 and "total" not in answer


# -- HTTPS outside development -------------------------------------------------


def _connector_env(tmp_path: Path, url: str, *, development: bool) -> dict[str, str]:
    """A company connector's environment as a deployment gives it: certificates
    from the internal CA and its partner key; only the URL and the switch vary."""
    cert, key = pki.issue_service(tmp_path / "pki", "connector-tencent")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YZTC_", "OTEL_"))}
    env.update(
        YZTC_TLS_CA=str(tmp_path / "pki" / "ca.pem"),
        YZTC_TLS_CERT=str(cert),
        YZTC_TLS_KEY=str(key),
        YZTC_CONNECTOR_LISTEN="127.0.0.1:0",
        YZTC_CONNECTOR_UPSTREAM_URL=url,
        YZTC_CONNECTOR_PARTNER_KEY_FILE=str(partner_key(tmp_path / "keys", "tencent")),
        YZTC_CONNECTOR_PARTNER_KEY_ID=partner_key_id("tencent"),
    )
    if development:
        env["YZTC_DEVELOPMENT"] = "1"
    return env


def _start(env: dict[str, str]) -> tuple[int | None, str]:
    """Starts the connector: (exit status, stderr) if it stopped within 20 s,
    else (None, its first line) once it listens, then stops it by PID."""
    with subprocess.Popen(
        [sys.executable, "-m", "platform_connectors", "company", "tencent"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline()
            if " listening on " in line:
                return None, line
            return proc.wait(20), proc.stderr.read()
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()


def test_an_http_partner_url_is_refused_at_start_outside_development(tmp_path: Path) -> None:
    status, said = _start(_connector_env(tmp_path, "http://127.0.0.1:9/companies/tencent", development=False))
    assert status is not None and status != 0
    assert "YZTC_CONNECTOR_UPSTREAM_URL is http://" in said and "HTTPS" in said


def test_the_same_connector_starts_with_https_or_in_development(tmp_path: Path) -> None:
    # The control: nothing else in that environment stops it.
    assert _start(_connector_env(tmp_path, "https://127.0.0.1:9/companies/tencent", development=False))[0] is None
    assert _start(_connector_env(tmp_path, "http://127.0.0.1:9/companies/tencent", development=True))[0] is None


def test_a_connector_without_its_partner_key_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("YZTC_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("YZTC_CONNECTOR_UPSTREAM_URL", "https://partner.example/yztc")
    with pytest.raises(SystemExit, match="YZTC_CONNECTOR_PARTNER_KEY_FILE"):
        Upstream.from_settings(ConnectorSettings(), "connector-tencent")
    monkeypatch.setenv("YZTC_CONNECTOR_PARTNER_KEY_FILE", str(tmp_path / "absent.pem"))
    monkeypatch.setenv("YZTC_CONNECTOR_PARTNER_KEY_ID", "yztc-tencent-1")
    with pytest.raises(SystemExit, match="cannot use the partner key"):
        Upstream.from_settings(ConnectorSettings(), "connector-tencent")
    monkeypatch.setenv("YZTC_CONNECTOR_PARTNER_KEY_FILE", str(partner_key(tmp_path, "tencent")))
    assert isinstance(Upstream.from_settings(ConnectorSettings(), "connector-tencent"), Upstream)


@pytest.mark.parametrize(
    "url", ["ftp://partner.example/x", "https:///x", "https://u:p@partner.example/x", "https://partner.example/x?y=1"]
)
def test_other_malformed_partner_urls_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for key in list(os.environ):
        if key.startswith("YZTC_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("YZTC_DEVELOPMENT", "1")
    monkeypatch.setenv("YZTC_CONNECTOR_UPSTREAM_URL", url)
    monkeypatch.setenv("YZTC_CONNECTOR_PARTNER_KEY_FILE", str(partner_key(tmp_path, "tencent")))
    monkeypatch.setenv("YZTC_CONNECTOR_PARTNER_KEY_ID", "yztc-tencent-1")
    with pytest.raises(SystemExit, match="YZTC_CONNECTOR_UPSTREAM_URL"):
        Upstream.from_settings(ConnectorSettings(), "connector-tencent")
