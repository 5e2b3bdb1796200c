"""The eight internet companies' account-count APIs, one app with a path per
company.

    POST /companies/{company}/accounts/count  {"request_id", "phone"}
      sync:  200 {"status": "done", "total", "apps": [{"name", "count"}]}
      async: 202 {"status": "accepted", "ticket"}
    GET  /companies/{company}/accounts/count/{ticket}
      200 {"status": "pending"} until the count is ready, then the done body

Both are answered only to a request signed by a key given for that company
(simulators/partner_auth.py, docs/partner-api.md); anything else is 401.
docs/partner-api.openapi.yaml is what a real company serves.

Test hooks (the simulator's own, not a company's):
    GET  /sim/companies/calls                   every count request received,
                                                {"calls": {company: {request_id: n}}}
    PUT  /sim/companies/{company}/behaviour     change latency_ms / fail_rate /
                                                down / mode while running

The phone travels in the body, never in the URL, where proxies and access
logs would keep it. A repeated request_id gets the first answer again, so a
client may retry safely.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from simulators import partner_auth
from simulators.faults import delay, refusal
from simulators.http_json import PHONE, json_object, json_response, string_field
from simulators.scenario import CompanyBehaviour, Scenario, company_behaviour
from yztc.partner_signing import PartnerKeyRing

log = logging.getLogger("simulators.companies")


@dataclass
class _Ticket:
    company: str
    done: dict[str, Any]
    ready_at: float
    polls: int = 0


class AccountDesk:
    """The companies' memory: answers by request id, and async tickets."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float]) -> None:
        self.scenario = scenario
        self._clock = clock
        # (company, request_id) -> (phone, HTTP status, body)
        self._answers: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {}
        self._tickets: dict[str, _Ticket] = {}
        self._overrides: dict[str, CompanyBehaviour] = {}
        # company -> request_id -> count requests received (refused ones too)
        self.calls: dict[str, dict[str, int]] = {}

    def behaviour(self, company: str) -> CompanyBehaviour:
        return self._overrides.get(company) or self.scenario.company(company)

    def change(self, company: str, behaviour: CompanyBehaviour) -> None:
        self._overrides[company] = behaviour

    def submit(self, company: str, request_id: str, phone: str) -> tuple[int, dict[str, Any]]:
        key = (company, request_id)
        if key in self._answers:
            first_phone, status, body = self._answers[key]
            if first_phone != phone:
                # A reused id for another phone is a client bug; answering the
                # first phone's count would hide it.
                return 409, {"error": "request_id already used for another phone"}
            return status, body
        total, apps = self.scenario.accounts_for(phone, company)
        done = {"status": "done", "total": total, "apps": [{"name": a, "count": n} for a, n in apps]}
        behaviour = self.behaviour(company)
        if behaviour.mode == "async":
            ticket = secrets.token_urlsafe(16)
            self._tickets[ticket] = _Ticket(company, done, self._clock() + behaviour.latency_ms / 1000)
            status, body = 202, {"status": "accepted", "ticket": ticket}
        else:
            status, body = 200, done
        self._answers[key] = (phone, status, body)
        return status, body

    def poll(self, company: str, ticket: str) -> dict[str, Any] | None:
        """The ticket's state; None if there is no such ticket at this company."""
        found = self._tickets.get(ticket)
        if found is None or found.company != company:
            return None
        found.polls += 1
        # The first poll is always pending, so clients surely exercise their
        # pending path even when latency_ms is 0.
        if found.polls == 1 or self._clock() < found.ready_at:
            return {"status": "pending"}
        return found.done


DESK = web.AppKey("desk", AccountDesk)
RNG = web.AppKey("rng", random.Random)


def create_app(
    scenario: Scenario,
    *,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
    partner_keys: PartnerKeyRing | None = None,
    now: Callable[[], float] = time.time,
) -> web.Application:
    """The companies' app. `partner_keys`: the client keys each company
    accepts (None: every count and poll is refused 401); `now`: the wall
    clock signatures are checked against; `clock`: when async counts are ready."""
    app = web.Application()
    app[DESK] = AccountDesk(scenario, clock)
    app[RNG] = rng or random.Random()
    partner_auth.install(app, partner_keys, now)
    app.router.add_post("/companies/{company}/accounts/count", _count)
    app.router.add_get("/companies/{company}/accounts/count/{ticket}", _poll)
    app.router.add_get("/sim/companies/calls", _calls)
    app.router.add_put("/sim/companies/{company}/behaviour", _change_behaviour)
    return app


def _company(request: web.Request) -> str:
    company = request.match_info["company"]
    if company not in request.app[DESK].scenario.company_ids:
        raise web.HTTPNotFound(text='{"error": "unknown company"}', content_type="application/json")
    return company


async def _count(request: web.Request) -> web.Response:
    company = _company(request)
    await partner_auth.signed_body(request, company)
    desk = request.app[DESK]
    behaviour = desk.behaviour(company)
    body = await json_object(request)
    request_id = string_field(body, "request_id")
    per_request = desk.calls.setdefault(company, {})
    per_request[request_id] = per_request.get(request_id, 0) + 1
    if (refused := refusal(behaviour, request.app[RNG])) is not None:
        log.info("count refused", extra={"fields": {"company": company, "status": refused.status}})
        return refused
    phone = string_field(body, "phone", PHONE)
    # An async company answers "accepted" at once; its latency is the time
    # until the count is ready (see AccountDesk.poll).
    if behaviour.mode == "sync":
        await delay(behaviour)
    status, answer = desk.submit(company, request_id, phone)
    log.debug("count answered", extra={"fields": {"company": company, "request_id": request_id, "status": status}})
    return json_response(answer, status=status)


async def _poll(request: web.Request) -> web.Response:
    company = _company(request)
    await partner_auth.signed_body(request, company)
    desk = request.app[DESK]
    if (refused := refusal(desk.behaviour(company), request.app[RNG])) is not None:
        return refused
    answer = desk.poll(company, request.match_info["ticket"])
    if answer is None:
        raise web.HTTPNotFound(text='{"error": "unknown ticket"}', content_type="application/json")
    return json_response(answer)


async def _calls(request: web.Request) -> web.Response:
    return json_response({"calls": request.app[DESK].calls})


async def _change_behaviour(request: web.Request) -> web.Response:
    company = _company(request)
    desk = request.app[DESK]
    current = desk.behaviour(company)
    changes = await json_object(request)
    merged = {
        "latency_ms": current.latency_ms,
        "fail_rate": current.fail_rate,
        "down": current.down,
        "mode": current.mode,
        **changes,
    }
    try:
        behaviour = company_behaviour(merged, f"behaviour of {company}")
    except ValueError as error:
        return json_response({"error": str(error)}, status=400)
    desk.change(company, behaviour)
    log.info("behaviour changed", extra={"fields": {"company": company}})
    return json_response({"company": company, **merged})
