"""Receipts matched whatever form the centre writes its id in (issue 14 item
4), decided at the receipt window's close, and never applied to a submission
they cannot be about (ids reused; M8): the pure rules."""

from __future__ import annotations

import datetime as dt

import pytest

from sms_notifier import message_records as records
from sms_notifier.message_records import DELIVERED, FAILED, PartAt
from sms_notifier.receipts import parse, receipt_keys, receipt_time, stat_label, submit_key

CHINA = dt.timedelta(hours=8)
ISSUE_TEXT = b"id:0220945988 sub:001 dlvrd:001 submit date:2611301200 done date:2611301201 stat:DELIVRD err:000 text:"


def matches(response_id: str, receipt_id: str, form="auto") -> bool:
    return submit_key(response_id, form) in receipt_keys(receipt_id, form)


def test_the_issues_example_hex_response_and_a_decimal_text_only_receipt_name_one_message():
    receipt = parse(0x04, ISSUE_TEXT, {})
    assert receipt is not None and receipt.smsc_message_id == "0220945988" and receipt.delivered
    assert submit_key("0D2B5E44") in receipt.keys  # 220945988 = 0x0D2B5E44
    assert submit_key("0D2B5E44") == submit_key("d2b5e44") == "d2b5e44"
    # The dates, China Standard Time, as aware UTC.
    assert receipt.submitted_at == dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)
    assert receipt.done_at == dt.datetime(2026, 11, 30, 4, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "response,receipt",
    [
        ("d2b5e44", "d2b5e44"),  # same
        ("d2b5e44", "D2B5E44"),  # upper
        ("d2b5e44", "0D2B5E44"),  # hex, upper, zero-padded
        ("0d2b5e44", "d2b5e44"),  # leading zeros on the other side
        ("d2b5e44", "0220945988"),  # decimal, 10 digits
        ("d2b5e44", "220945988"),
        ("220945988", "D2B5E44"),  # decimal response, hex receipt (Kannel msg-id-type 2)
        ("00012345", "12345"),  # decimal both sides, padded
        ("node-7", "node-7"),  # not a number: as is
    ],
)
def test_auto_matches_every_form_of_one_id(response, receipt):
    assert matches(response, receipt)


def test_auto_tries_the_id_as_written_first():
    # All digits: the same digits first, then their decimal reading, then a
    # decimal response id the receipt wrote in hex (0x10 = 16).
    assert receipt_keys("10") == ("10", "a", "16")
    assert receipt_keys("0D2B5E44")[0] == "d2b5e44"


@pytest.mark.parametrize(
    "form,response,receipt,expected",
    [
        # "10" written in a receipt: hex 0x10, or decimal 10 (= 0xa)? The setting says.
        ("hex", "10", "10", True),
        ("hex", "a", "10", False),
        ("decimal", "a", "10", True),
        ("decimal", "10", "10", False),
        ("decimal", "d2b5e44", "0220945988", True),
        ("hex", "d2b5e44", "0D2B5E44", True),
        ("as_is", "d2b5e44", "D2B5E44", False),
        ("as_is", "D2B5E44", "D2B5E44", True),
    ],
)
def test_a_per_centre_form_settles_what_cannot_be_told_apart(form, response, receipt, expected):
    assert matches(response, receipt, form) is expected
    assert len(receipt_keys(receipt, form)) == 1


def test_a_receipt_id_longer_than_smpp_allows_is_no_receipt():
    assert parse(0x04, b"id:" + b"1" * 66 + b" stat:DELIVRD", {}) is None


def test_receipt_times_and_their_mistakes():
    assert receipt_time("2611301200", CHINA) == dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)
    assert receipt_time("261130120059", dt.timedelta(0)) == dt.datetime(2026, 11, 30, 12, 0, 59, tzinfo=dt.UTC)
    for bad in ("2613301200", "26113012", "abcdefghij", ""):
        assert receipt_time(bad, CHINA) is None


def test_stats_outside_the_fixed_set_are_other_and_failed():
    assert stat_label("delivrd") == "DELIVRD" and stat_label("UNDELIV") == "UNDELIV"
    assert stat_label("MK:0001") == "OTHER" and stat_label("x" * 500) == "OTHER"
    receipt = parse(0x04, b"id:1 stat:Zq9_random err:000", {})
    assert receipt is not None and receipt.stat == "OTHER" and receipt.final and not receipt.delivered
    assert records.settle(["1"], {"1": receipt.stat}) == (FAILED, "receipt OTHER")


@pytest.mark.parametrize(
    "stats,expected",
    [
        ({"a": "DELIVRD"}, (DELIVERED, "")),  # one receipt for the whole message (first part)
        ({"c": "DELIVRD"}, (DELIVERED, "")),  # ... or its last
        ({"a": "DELIVRD", "c": "UNDELIV"}, (FAILED, "receipt UNDELIV")),
        ({}, None),  # nothing arrived: ask the centre, or FAILED "no receipt"
        ({"x": "DELIVRD"}, None),  # not one of its parts
    ],
)
def test_at_the_windows_close_a_message_is_decided_from_what_arrived(stats, expected):
    if "UNDELIV" not in stats.values():
        assert records.settle(["a", "b", "c"], stats) is None  # before the window: still waiting
    assert records.settle_at_window(["a", "b", "c"], stats) == expected


AT = dt.datetime(2026, 11, 30, 4, 0, 30, tzinfo=dt.UTC)
SLACK = dt.timedelta(minutes=2)


def test_a_receipt_fits_a_part_submitted_before_its_submit_date_only():
    assert records.receipt_fits(AT, AT.replace(second=0), SLACK)  # minute precision
    assert records.receipt_fits(AT, AT - dt.timedelta(minutes=2), SLACK)  # the centre's clock a bit behind
    assert not records.receipt_fits(AT, AT - dt.timedelta(minutes=10), SLACK)  # about an earlier submission
    assert records.receipt_fits(AT, None, SLACK)  # no date given: fits
    # A part's exact submission time bounds the date from above too.
    assert records.receipt_fits(AT, AT + dt.timedelta(hours=3), SLACK)
    assert not records.receipt_fits(AT, AT + dt.timedelta(hours=3), SLACK, exact=True)


def test_a_reused_id_settles_the_newest_unsettled_submission_it_fits_never_a_settled_one():
    old = PartAt("result:old", AT - dt.timedelta(hours=3))
    new = PartAt("result:new", AT)
    both = [old, new]
    open_ = {"result:old", "result:new"}
    # A receipt written now is about the new submission.
    assert records.pick_part(both, AT + dt.timedelta(minutes=1), open_.__contains__, SLACK) == "result:new"
    # One written three hours ago is about the old one, never the new.
    assert records.pick_part(both, old.at, open_.__contains__, SLACK) == "result:old"
    # Once the old one is settled, its late receipt settles nothing.
    assert records.pick_part(both, old.at, {"result:new"}.__contains__, SLACK) is None
    # Nor does a settled new one take a receipt that came again.
    assert records.pick_part(both, AT, {"result:old"}.__contains__, SLACK) is None
    # No date: the newest unsettled.
    assert records.pick_part(both, None, open_.__contains__, SLACK) == "result:new"
