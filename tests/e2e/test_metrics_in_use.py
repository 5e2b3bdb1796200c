"""The names the dashboard and the alert rules use are the names the
services really export: a stack started as `make run` starts it, with the
aggregator's and the notifier's Prometheus endpoints on free ports, walks a
query where a company fails once and a code SMS that the SMS centre cannot
deliver, so every counter and histogram has a sample; then every metric the
dashboard's panels and the rules select (recording rules resolved to what
they are made of) must be on those /metrics pages, and no page may carry a
phone number."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from devstack.stack import ROOT, Ports, Stack, free_ports
from devstack.supervisor import Child
from tests.deploy.promql import EXTERNAL_PREFIXES, dashboard_queries, exposed_names, metric_names, rules, source_names
from tests.e2e.conftest import latest_code
from yztc.certificate_expiry import certificate_not_after

PHONE = "13800138000"  # the scenario's first subscriber
UNDELIVERABLE = "13900139000"  # accepted by the SMS centre, then a receipt saying UNDELIV
FAILING_COMPANY = "baidu"


METERED = ("aggregator", "sms_notifier", "gateway", "connector-jd")


class MeteredStack(Stack):
    """The stack, with /metrics of the aggregator, the notifier, the gateway
    and one connector served on ports of their own (one YZTC_METRICS_PORT for
    all would collide)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.metrics_ports = dict(zip(METERED, free_ports(len(METERED)), strict=True))

    def _metered(self, child: Child, service: str) -> Child:
        child.env["YZTC_METRICS_PORT"] = str(self.metrics_ports[service])
        return child

    def aggregator(self, name: str = "aggregator", port: int | None = None) -> Child:
        return self._metered(super().aggregator(name, port), "aggregator")

    def notifier(self) -> Child:
        return self._metered(super().notifier(), "sms_notifier")

    def gateway(self) -> Child:
        return self._metered(super().gateway(), "gateway")

    def connectors(self) -> list[Child]:
        return [self._metered(c, c.name) if c.name in self.metrics_ports else c for c in super().connectors()]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeteredStack]:
    var = tmp_path_factory.mktemp("metered-stack")
    scenario = json.loads((ROOT / "simulators" / "default_scenario.json").read_text(encoding="utf-8"))
    scenario["companies"][FAILING_COMPANY]["fail_rate"] = 1.0  # until the test has seen it fail
    scenario["sms_centre"] = {"undeliverable": [UNDELIVERABLE]}
    (var / "scenario.json").write_text(json.dumps(scenario, ensure_ascii=False), encoding="utf-8")
    stack = MeteredStack(var, Ports.free(), scenario=str(var / "scenario.json"))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def scrape(http: aiohttp.ClientSession, port: int) -> str:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def until(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.25)
    return found


async def walk_a_query(stack: MeteredStack, http: aiohttp.ClientSession) -> dict[str, str]:
    """A query whose company fails once, and a code SMS that is never
    delivered; returns each service's /metrics page once every sample the
    walk makes is on it."""
    base = f"http://127.0.0.1:{stack.ports.gateway}"
    aggregator, notifier = stack.metrics_ports["aggregator"], stack.metrics_ports["sms_notifier"]
    async with http.post(f"{base}/api/v1/sessions", json={"auth_code": "demo-auth-code"}) as r:
        assert r.status == 200, await r.text()
        headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
    async with http.post(f"{base}/api/v1/verification-codes", json={"phone": PHONE}, headers=headers) as r:
        assert r.status == 202, await r.text()
    code = await latest_code(stack, PHONE)
    scenario = json.loads(Path(stack.scenario).read_text(encoding="utf-8"))
    id_last6 = next(s["id_last6"] for s in scenario["subscribers"] if s["phone"] == PHONE)
    body = {"phone": PHONE, "id_last6": id_last6, "code": code, "consent": True}
    async with http.post(f"{base}/api/v1/queries", json=body, headers=headers) as r:
        assert r.status == 202, await r.text()
        query_id = (await r.json())["query_id"]

    async def company_failed() -> bool:
        page = await scrape(http, aggregator)
        return any(
            line.startswith("yztc_company_call_errors_total") and f'company="{FAILING_COMPANY}"' in line
            for line in page.splitlines()
        )

    await until(company_failed, f"failed call to {FAILING_COMPANY}")
    sim = f"http://127.0.0.1:{stack.ports.sim_companies}/sim/companies/{FAILING_COMPANY}/behaviour"
    async with http.put(sim, json={"fail_rate": 0.0}) as r:
        assert r.status == 200, await r.text()

    async def finished() -> bool:
        async with http.get(f"{base}/api/v1/queries/{query_id}", headers=headers) as r:
            query = await r.json()
        return query["status"] != "IN_PROGRESS" and query["sms"]["state"] != "PENDING"

    await until(finished, "finished query", timeout=90)
    async with http.post(f"{base}/api/v1/verification-codes", json={"phone": UNDELIVERABLE}, headers=headers) as r:
        assert r.status == 202, await r.text()

    async def settled() -> bool:
        page = await scrape(http, notifier)
        return 'state="FAILED"' in page and "yztc_sms_receipt_latency_seconds_bucket" in page

    await until(settled, "FAILED receipt and receipt latency on the notifier's page")
    return {"aggregator": await scrape(http, aggregator), "sms_notifier": await scrape(http, notifier)}


def used_names() -> dict[str, set[str]]:
    """Where each metric is used -> names, recording rules resolved."""
    used = {f"dashboard: {title}": source_names(metric_names(expr)) for title, expr in dashboard_queries().items()}
    for rule in rules():
        used[f"rule {rule.get('alert') or rule['record']}"] = source_names(metric_names(rule["expr"]))
    return used


async def test_dashboard_and_rules_use_exported_metrics(stack: MeteredStack) -> None:
    async with aiohttp.ClientSession() as http:
        pages = await walk_a_query(stack, http)
    exposed = set().union(*(exposed_names(page) for page in pages.values()))
    assert {
        "yztc_queries_result_sms_total",
        "yztc_sms_send_duration_seconds_bucket",
        "yztc_database_up",
        "yztc_tls_certificate_expiration_timestamp_seconds",
    } <= exposed
    missing = {
        where: sorted(name for name in names if not name.startswith(EXTERNAL_PREFIXES) and name not in exposed)
        for where, names in used_names().items()
    }
    assert not {where: names for where, names in missing.items() if names}, sorted(exposed)
    # The bucket bounds the objectives compare against are bounds the services export.
    rules_text = " ".join(rule["expr"] for rule in rules())
    for name, bound in (
        ("yztc_queries_result_sms_delay_seconds_bucket", "300.0"),
        ("yztc_sms_send_duration_seconds_bucket", "2.0"),
    ):
        assert f'le="{bound}"' in rules_text
        assert any(
            line.startswith(name) and f'le="{bound}"' in line for page in pages.values() for line in page.splitlines()
        ), f'{name} has no bucket le="{bound}"'


async def test_every_service_exports_when_its_certificates_expire(stack: MeteredStack) -> None:
    """Each service's gauge names it and its files (yztc.certificate_expiry),
    with the notAfter of the certificate the stack issued it."""
    async with aiohttp.ClientSession() as http:
        for service, port in stack.metrics_ports.items():
            page = await scrape(http, port)
            found = {}
            for labels, value in re.findall(
                r"^yztc_tls_certificate_expiration_timestamp_seconds\{([^}]*)\} (\S+)$", page, re.M
            ):
                named = dict(re.findall(r'(\w+)="([^"]*)"', labels))
                assert named["service"] == service, (service, labels)
                found[named["role"]] = float(value)
            assert {"cert", "ca"} <= set(found), (service, page)
            cert_file = stack.pki_dir / f"{'sms-notifier' if service == 'sms_notifier' else service}.pem"
            assert found["cert"] == certificate_not_after(str(cert_file)), service


async def test_no_personal_data_on_the_metrics_pages(stack: MeteredStack) -> None:
    async with aiohttp.ClientSession() as http:
        for port in stack.metrics_ports.values():
            page = await scrape(http, port)
            assert PHONE not in page and UNDELIVERABLE not in page
            assert not re.search(r'="[^"]*1[3-9]\d{9}[^"]*"', page), "a phone number in a label"
            assert "query_id" not in page and "result:" not in page and "code:" not in page
