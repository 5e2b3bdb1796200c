"""M5: one MongoDB credential (Secret yztc-mongodb) served the gateway, the
aggregator and the notifier, so a compromised gateway pod could delete every
phone lock and attempt counter and read every query. Now each service has
its own user (its own Secret) and a role granting only its collections
(deploy/mongodb/roles.js).

FerretDB v1.24, our wire server in tests, does not enforce roles: these
checks are static. The collections each service uses are read from its code
(every `db["name"]` in its package and the yztc modules it imports), and the
role script must grant exactly those: a new collection without a grant, or
a grant nothing uses, fails here."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tests.deploy.conftest import (  # noqa: F401  (fixtures)
    ROOT,
    dev_secret_objects,
    kustomize,
    objects,
    rendered,
    stand_in_secrets,
)
from tests.deploy.model import container_env, workloads

ROLES = ROOT / "deploy" / "mongodb" / "roles.js"
# Service package -> its Deployment, and the Secret holding its URI.
SERVICES = {
    "gateway": ("gateway", "yztc-mongodb-gateway"),
    "aggregator": ("aggregator", "yztc-mongodb-aggregator"),
    "sms_notifier": ("sms-notifier", "yztc-mongodb-sms-notifier"),
}
ACTIONS = {"find", "insert", "update", "remove", "createIndex"}
# What the review's reproduction deleted or read from a gateway pod.
NOT_THE_GATEWAYS = ("phones", "claims", "queries", "work", "leases", "query_stats", "sms", "sms_queue")
_DB_NAME = re.compile(r"(^|_)(db|database)$")


def grants() -> dict[str, dict[str, list[str]]]:
    text = ROLES.read_text(encoding="utf-8")
    block = text.split("// BEGIN GRANTS", 1)[1].split("// END GRANTS", 1)[0]
    literal = block[block.index("{") : block.rindex("}") + 1]
    return json.loads(literal)


def _module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _terminal_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _terminal_name(node.func)
    return ""


def collections_used(package: str) -> set[str]:
    """Every literal `db["name"]` (or `self._db[...]`, `database[...]`) in
    `package` and in the repository modules it imports, transitively."""
    pending = [p for p in (ROOT / package).rglob("*.py")]
    seen: set[Path] = set()
    found: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
                and _DB_NAME.search(_terminal_name(node.value))
            ):
                found.add(node.slice.value)
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for module in modules:
                if module.split(".")[0] == "yztc":
                    target = _module_path(module)
                    if target is not None:
                        pending.append(target)
    return found


def test_the_collector_sees_what_the_review_saw() -> None:
    """The reader is not blind: the gateway's two collections, and the
    aggregator's phone locks (phones) and queries."""
    assert collections_used("gateway") == {"sessions", "rate_limit_slots"}
    assert {"phones", "queries", "claims"} <= collections_used("aggregator")


def test_each_service_is_granted_exactly_the_collections_its_code_uses() -> None:
    granted = grants()
    assert set(granted) == set(SERVICES)
    for package in SERVICES:
        assert set(granted[package]) == collections_used(package), package


def test_the_connectors_use_no_database_and_have_no_user() -> None:
    assert collections_used("platform_connectors") == set()
    assert "platform_connectors" not in grants()


def test_grants_are_collection_scoped_with_plain_actions() -> None:
    for service, collections in grants().items():
        for collection, actions in collections.items():
            assert actions and set(actions) <= ACTIONS, (service, collection, actions)
    script = ROLES.read_text(encoding="utf-8")
    # Each role is exactly its privileges: no built-in role is added.
    assert "roles: []" in script and "readWrite" not in script and "dbOwner" not in script
    assert "resource: { db: dbName, collection: collection }" in script


def test_the_gateway_cannot_touch_locks_codes_attempts_or_queries() -> None:
    gateway = set(grants()["gateway"])
    assert gateway == {"sessions", "rate_limit_slots"}
    for name in NOT_THE_GATEWAYS:
        assert name not in gateway
    assert not any(word in c for c in gateway for word in ("lock", "code", "attempt", "quer", "phone", "claim"))
    # Nor does any collection belong to two services.
    owners: dict[str, str] = {}
    for service, collections in grants().items():
        for collection in collections:
            assert collection not in owners, (collection, owners.get(collection), service)
            owners[collection] = service


def test_each_service_has_its_own_database_secret(
    objects: dict[str, list[dict]], stand_in_secrets: dict[str, dict[str, str]]
) -> None:
    for overlay, objs in objects.items():
        uses: dict[str, str] = {}
        for w in workloads(objs):
            for c in w.containers:
                for var in c.get("env", []):
                    if var["name"] == "MONGODB_URI" and "valueFrom" in var:
                        uses[w.name] = var["valueFrom"]["secretKeyRef"]["name"]
        wanted = {deployment: secret for deployment, secret in SERVICES.values()}
        for name, secret in uses.items():
            if name == "mongodb":
                continue
            assert wanted.get(name) == secret, (overlay, name, secret)
        for deployment, secret in wanted.items():
            assert uses.get(deployment) == secret, (overlay, deployment)
        assert not any(name.startswith("connector-") for name in uses), overlay
        # Every one is resolvable (the dev Secrets stand in for prod's).
        for w in workloads(objs):
            if w.name in wanted:
                env = container_env(objs, w, w.containers[0], stand_in_secrets)
                assert env["MONGODB_URI"].startswith("mongodb")
