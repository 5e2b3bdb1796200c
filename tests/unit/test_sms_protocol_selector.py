"""YZTC_NOTIFIER_SMSC_PROTOCOL: smpp34 (the default, needing the SMPP
password) or cmpp30 (needing the YZTC_NOTIFIER_CMPP_* account instead)."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from sms_notifier.settings import NotifierSettings

KEY = base64.b64encode(bytes(32)).decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("YZTC_NOTIFIER_PASSWORD", "YZTC_NOTIFIER_SMSC_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YZTC_NOTIFIER_DATA_KEY", KEY)
    return monkeypatch


def test_smpp34_is_the_default_and_needs_its_password(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as caught:
        NotifierSettings()
    assert {e["loc"][0] for e in caught.value.errors()} == {"password"}
    env.setenv("YZTC_NOTIFIER_PASSWORD", "pw")
    assert NotifierSettings().smsc_protocol == "smpp34"


def test_cmpp30_needs_no_smpp_password(env: pytest.MonkeyPatch) -> None:
    env.setenv("YZTC_NOTIFIER_SMSC_PROTOCOL", "cmpp30")
    assert NotifierSettings().smsc_protocol == "cmpp30"


def test_other_protocols_are_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("YZTC_NOTIFIER_PASSWORD", "pw")
    env.setenv("YZTC_NOTIFIER_SMSC_PROTOCOL", "sgip12")
    with pytest.raises(ValidationError) as caught:
        NotifierSettings()
    assert {e["loc"][0] for e in caught.value.errors()} == {"smsc_protocol"}
