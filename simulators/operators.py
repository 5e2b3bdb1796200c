"""The four operators' real-name check, one app with a path per operator.

    POST /operators/{operator}/subscribers/verify  {"phone", "id_last6"}
      200 {"result": "match" | "mismatch" | "cancelled" | "unknown" | "ported",
           "ported_to"?: "<operator>"}

Answered only to a request signed by a key given for that operator
(simulators/partner_auth.py, docs/partner-api.md); anything else is 401.
The ID six is compared and forgotten: it is never logged nor kept.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from simulators import partner_auth
from simulators.faults import delay, refusal
from simulators.http_json import PHONE, json_object, json_response, string_field
from simulators.scenario import Scenario
from yztc.identifiers import OPERATOR_IDS
from yztc.partner_signing import PartnerKeyRing

log = logging.getLogger("simulators.operators")

_ID_LAST6 = re.compile(r"\d{5}[\dXx]")

SCENARIO = web.AppKey("scenario", Scenario)
RNG = web.AppKey("rng", random.Random)


def verdict(scenario: Scenario, operator: str, phone: str, id_last6: str) -> dict[str, Any]:
    """What `operator` answers about `phone` and `id_last6`."""
    subscriber = scenario.subscribers.get(phone)
    if subscriber is None:
        return {"result": "unknown"}
    # 携号转网: the number's old operator still answers for its segment and
    # says where the subscriber went.
    if subscriber.operator != operator:
        return {"result": "ported", "ported_to": subscriber.operator}
    if subscriber.status == "cancelled":
        return {"result": "cancelled"}
    return {"result": "match" if id_last6.upper() == subscriber.id_last6 else "mismatch"}


def create_app(
    scenario: Scenario,
    *,
    rng: random.Random | None = None,
    partner_keys: PartnerKeyRing | None = None,
    now: Callable[[], float] = time.time,
) -> web.Application:
    """The operators' app. `partner_keys`: the client keys each operator
    accepts (None: every check is refused 401); `now`: the wall clock
    signatures are checked against."""
    app = web.Application()
    app[SCENARIO] = scenario
    app[RNG] = rng or random.Random()
    partner_auth.install(app, partner_keys, now)
    app.router.add_post("/operators/{operator}/subscribers/verify", _verify)
    return app


async def _verify(request: web.Request) -> web.Response:
    operator = request.match_info["operator"]
    if operator not in OPERATOR_IDS:
        raise web.HTTPNotFound(text='{"error": "unknown operator"}', content_type="application/json")
    await partner_auth.signed_body(request, operator)
    scenario = request.app[SCENARIO]
    behaviour = scenario.operator(operator)
    if (refused := refusal(behaviour, request.app[RNG])) is not None:
        log.info("verify refused", extra={"fields": {"operator": operator, "status": refused.status}})
        return refused
    body = await json_object(request)
    phone = string_field(body, "phone", PHONE)
    id_last6 = string_field(body, "id_last6", _ID_LAST6)
    await delay(behaviour)
    answer = verdict(scenario, operator, phone, id_last6)
    log.debug("verify answered", extra={"fields": {"operator": operator, "result": answer["result"]}})
    return json_response(answer)
