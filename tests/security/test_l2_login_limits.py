"""L2: logins (each an Alipay OpenAPI call) were limited only by the generic
600/min per address, and IPv6 was grouped at /64 only, so one /48 held
65,536 buckets. Now a strict per-address login limit is claimed before the
Alipay call, and an IPv6 client's /56 and /48 have limits of their own."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from simulators.scenario import parse_scenario
from tests.integration.conftest import gateways, keys  # noqa: F401  (fixtures)
from tests.integration.gateways import Gateways

USER = "2088000000000654"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"code-user": USER}}})
PROXY = "127.0.0.1"  # the test client: configured as the trusted proxy, so XFF names the client


async def _gateway(gateways: Gateways, **settings) -> tuple[TestClient, TestClient]:
    simulator = await gateways.alipay(SCENARIO)
    gateway = await gateways.start(
        alipay_url=str(simulator.make_url("/gateway.do")), trusted_proxies=[f"{PROXY}/32"], **settings
    )
    return gateway, simulator


async def _login(gateway: TestClient, client: str, code: str = "made-up") -> int:
    response = await gateway.post("/api/v1/sessions", json={"auth_code": code}, headers={"X-Forwarded-For": client})
    return response.status


async def test_made_up_codes_from_one_address_are_refused_before_alipay(gateways: Gateways) -> None:  # noqa: F811
    gateway, _ = await _gateway(gateways, limit_ip_logins="3/600")
    assert [await _login(gateway, "203.0.113.9") for _ in range(3)] == [401, 401, 401]
    refused = await gateway.post(
        "/api/v1/sessions", json={"auth_code": "code-user"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert refused.status == 429
    body = await refused.json()
    assert body["error"]["code"] == "RATE_LIMITED" and 1 <= body["error"]["retry_after"] <= 600
    # The limit is the address's: another address logs in.
    assert await _login(gateway, "203.0.113.10", "code-user") == 200


async def test_ipv6_hosts_of_one_prefix_share_their_56_and_48(gateways: Gateways) -> None:  # noqa: F811
    gateway, _ = await _gateway(
        gateways, limit_ip_logins="100/600", limit_ip56_logins="4/600", limit_ip48_logins="6/600"
    )
    # Four /64s of one /56: each its own /64 bucket, but one /56.
    statuses = [await _login(gateway, f"2001:db8:1:{n}::1") for n in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    # Another /56 of the same /48: two more, then the /48 is full.
    statuses = [await _login(gateway, f"2001:db8:1:{n}00::1") for n in range(1, 4)]
    assert statuses == [401, 401, 429]
    # Another /48 is untouched.
    assert await _login(gateway, "2001:db8:2::1", "code-user") == 200


async def test_the_login_limit_costs_no_alipay_call(gateways: Gateways) -> None:  # noqa: F811
    """The refused login reached nothing: a dead Alipay would answer 503,
    not 429, had it been asked."""
    gateway = await gateways.start(limit_ip_logins="1/600", trusted_proxies=[f"{PROXY}/32"])
    assert await _login(gateway, "198.51.100.4") == 503  # Alipay is at a dead port
    assert await _login(gateway, "198.51.100.4") == 429
