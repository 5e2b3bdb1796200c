"""The CMPP link's pure parts: what each SUBMIT_RESP Result means for the
message, and its settings under YZTC_NOTIFIER_CMPP_*."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sms_notifier.cmpp_link import CmppSettings, CmppSubmitResult, msg_id_text
from sms_notifier.smpp_status import Verdict


@pytest.mark.parametrize(
    ("result", "verdict", "reason"),
    [
        (0, Verdict.ACCEPTED, "CMPP_OK"),
        (8, Verdict.TRANSIENT, "CMPP_FLOW_CONTROL"),
        (3, Verdict.TRANSIENT, "CMPP_DUPLICATE_SEQUENCE"),
        (4, Verdict.PERMANENT, "CMPP_BAD_LENGTH"),
        (13, Verdict.PERMANENT, "CMPP_BAD_DEST_TERMINAL_ID"),
        (10, Verdict.PERMANENT, "CMPP_BAD_SRC_ID"),
        (14, Verdict.TRANSIENT, "CMPP_RESULT_14"),  # past the spec's list: a gateway's own fault
    ],
)
def test_results_mean_what_the_spec_says(result: int, verdict: Verdict, reason: str) -> None:
    answer = CmppSubmitResult(result, "1" if result == 0 else None)
    assert answer.verdict is verdict
    assert answer.reason == reason
    assert answer.throttled is (result == 8)


def test_no_answer_is_transient_and_says_why() -> None:
    answer = CmppSubmitResult(None, error="connection_lost")
    assert answer.verdict is Verdict.TRANSIENT and answer.reason == "connection_lost" and not answer.throttled


def test_msg_ids_are_unsigned_decimal() -> None:
    assert msg_id_text(0) == "0"
    assert msg_id_text(2**64 - 1) == "18446744073709551615"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YZTC_NOTIFIER_CMPP_SOURCE_ADDR", "901234")
    monkeypatch.setenv("YZTC_NOTIFIER_CMPP_SHARED_SECRET", "hunter2-cmpp")
    monkeypatch.setenv("YZTC_NOTIFIER_CMPP_SERVICE_ID", "YZTC")
    monkeypatch.setenv("YZTC_NOTIFIER_CMPP_PORT", "7891")
    s = CmppSettings()
    assert (s.source_addr, s.service_id, s.port, s.src_id, s.window) == ("901234", "YZTC", 7891, "10699000", 16)
    assert s.shared_secret.get_secret_value() == "hunter2-cmpp" and "hunter2" not in repr(s)


def test_settings_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YZTC_NOTIFIER_CMPP_SHARED_SECRET", raising=False)
    monkeypatch.setenv("YZTC_NOTIFIER_CMPP_SOURCE_ADDR", "9012345")  # SP_Id is 6 octets
    with pytest.raises(ValidationError) as caught:
        CmppSettings()
    assert {e["loc"][0] for e in caught.value.errors()} == {"source_addr", "shared_secret"}


@pytest.mark.parametrize("msg_id", [1, 0x0D2B5E44, 0x8000_0000_0000_0001, 0xFFFF_FFFF_FFFF_FFFF])
def test_a_reports_msg_id_names_the_part_its_submit_resp_named(msg_id: int) -> None:
    """Msg_Id is 8 binary octets on both sides: the report (through the codec,
    as the link reads it) and the SUBMIT_RESP give one and the same key."""
    from simulators.cmpp_server import msg_id_for
    from sms_notifier.cmpp_link import CmppLink
    from sms_notifier.metrics import Metrics
    from yztc import cmpp

    resp = cmpp.SubmitResp.decode(cmpp.SubmitResp(msg_id, 0).encode(7)[cmpp.HEADER_LENGTH :])
    report = cmpp.Report(msg_id, "DELIVRD", "2611301200", "2611301201", "13800138000")
    deliver = cmpp.Deliver.report(99, "10699000", report)
    decoded = cmpp.Deliver.decode(deliver.encode(8)[cmpp.HEADER_LENGTH :]).status_report()
    assert decoded is not None
    settings = CmppSettings(source_addr="901234", shared_secret="s")
    link = CmppLink(settings, metrics=Metrics())
    receipt = link.receipt_of(decoded)
    submitted = link.key_of(msg_id_text(resp.msg_id))
    assert receipt.keys == (submitted,) and receipt.delivered
    # The report's times are the ISMG's (China) clock.
    assert receipt.submitted_at is not None and receipt.submitted_at.hour == 4
    # The simulator writes the same Msg_Id in its SUBMIT_RESP and its report.
    assert msg_id_for(format(msg_id, "x")) == msg_id
