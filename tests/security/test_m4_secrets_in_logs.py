"""M4: the database password never reaches a log line.

The review: `describe()` masked only top-level SecretStr fields, and
`mongodb_uri` (a plain string holding the password) was logged by the
gateway, the aggregator and the notifier. Each is started here as a real
process at DEBUG with a URI holding a password; its whole output for a few
seconds (start-up, the settings dump, database traffic) holds the masked
URI and never the password."""

from __future__ import annotations

import json

import pytest

from tests.security.services import SERVICES, clean_env, run_for, service_env
from yztc.settings import CommonSettings, mask_uri_passwords

PASSWORD = "S3cretPassw0rd"


def _with_password(uri: str) -> str:
    """The test database's URI with a user and password (FerretDB takes PLAIN)."""
    return uri.replace("mongodb://", f"mongodb://yztc:{PASSWORD}@", 1) + "?authMechanism=PLAIN"


@pytest.mark.parametrize("service", ["aggregator", "notifier", "gateway"])
def test_the_password_appears_in_no_log_line(service, tmp_path, mongodb_uri):
    env = clean_env(
        **service_env(service, tmp_path, _with_password(mongodb_uri)),
        YZTC_DEVELOPMENT="1",  # plaintext gRPC on loopback: this test is about the logs
        YZTC_LOG_LEVEL="DEBUG",
    )
    status, out = run_for(SERVICES[service], env, 6)
    assert status is None, f"{service} stopped early: {out[-2000:]}"
    assert PASSWORD not in out
    # The settings dump was logged (so the test saw it), masked.
    assert "mongodb_uri" in out and "yztc:***@" in out, out[-3000:]


# A key of the wrong length, in each setting that holds one.
SHORT_KEY = "c2hvcnQtYnV0LXNlY3JldC1rZXk="
MALFORMED_KEYS = {
    "aggregator": {"YZTC_AGGREGATOR_PHONE_KEYS": json.dumps({"k1": SHORT_KEY})},
    "aggregator hash": {"YZTC_AGGREGATOR_HASH_KEYS": json.dumps({"h1": SHORT_KEY})},
    "notifier": {"YZTC_NOTIFIER_DATA_KEY": SHORT_KEY},
    "gateway": {"YZTC_GATEWAY_HASH_KEYS": json.dumps({"h1": SHORT_KEY})},
}


@pytest.mark.parametrize("case", sorted(MALFORMED_KEYS))
def test_a_malformed_key_is_refused_without_being_printed(case, tmp_path, mongodb_uri):
    """Settings errors name the setting, never its value (pydantic prints
    the input by default: hide_input_in_errors)."""
    service = case.split()[0]
    env = clean_env(**{**service_env(service, tmp_path, mongodb_uri), **MALFORMED_KEYS[case]}, YZTC_DEVELOPMENT="1")
    status, out = run_for(SERVICES[service], env, 20)
    assert status not in (None, 0), f"{case} started with a malformed key: {out[-2000:]}"
    assert SHORT_KEY not in out and "c2hvcnQt" not in out, out[-2000:]


def test_describe_masks_uris_and_nested_secrets():
    class Settings(CommonSettings):
        mongodb_uri: str = f"mongodb://yztc:{PASSWORD}@db1:27017/yztc?tls=true"
        targets: dict[str, str] = {"a": f"https://u:{PASSWORD}@partner.example/api"}

    shown = Settings().describe()
    assert PASSWORD not in shown
    assert "mongodb://yztc:***@db1:27017/yztc?tls=true" in shown
    assert mask_uri_passwords("mongodb://db1/yztc") == "mongodb://db1/yztc"
