"""The notifier's pure rules, without I/O: the concatenation reference
derived from the message id, the record shapes and `_id` forms, the state
read back from whichever records exist, and settling from receipts."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from sms_notifier import message_records as records
from sms_notifier.message_records import DELIVERED, FAILED, PENDING, SENT

AT = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def test_the_reference_is_one_octet_derived_from_the_id_alone():
    assert records.udh_ref("result:q1") == hashlib.sha256(b"result:q1").digest()[0]
    # The same on every call (every attempt, every replica, after a restart) ...
    assert {records.udh_ref("result:q1") for _ in range(5)} == {records.udh_ref("result:q1")}
    # ... and spread over the octet for different ids.
    refs = {records.udh_ref(f"result:{i}") for i in range(2000)}
    assert refs <= set(range(256)) and len(refs) > 200


def test_ids_of_each_record_kind():
    assert records.sent_id("code:1") == "s:code:1"
    assert records.final_id("code:1") == "d:code:1"
    assert records.part_id("a1b2") == "p:a1b2"
    assert records.receipt_id("a1b2") == "r:a1b2"
    assert records.attempt_id("code:1", 2) == "a:code:1#2"
    assert records.queue_id("code:1") == "q:code:1"
    assert records.message_of_queue_id("q:code:1") == "code:1"


def test_the_sent_insert_carries_the_message_and_one_look_up_per_part():
    docs = records.sent_records("result:q", {2: "bb", 1: "aa"}, 2, 77, AT, attempt=1, rounds=1)
    assert docs == [
        {
            "_id": "s:result:q",
            "parts": [{"seq": 1, "smsc_id": "aa"}, {"seq": 2, "smsc_id": "bb"}],
            "segments": 2,
            "udh_ref": 77,
            "sent_at": AT,
            "at": AT,
            "attempt": 1,
            "rounds": 1,
        },
        {"_id": "p:aa", "m": "result:q", "seq": 1, "at": AT},
        {"_id": "p:bb", "m": "result:q", "seq": 2, "at": AT},
    ]
    # Nothing personal in any record: no destination, no text.
    assert "dest" not in repr(docs) and "text" not in repr(docs)


def test_a_final_record_is_delivered_or_failed_only():
    assert records.final_record("m", DELIVERED, "", AT) == {"_id": "d:m", "state": DELIVERED, "reason": "", "at": AT}
    failed = records.final_record("m", FAILED, "ESME_RINVDSTADR", AT, segments=1, rounds=1, parts={})
    assert failed["segments"] == 1 and failed["rounds"] == 1 and failed["parts"] == []
    with pytest.raises(ValueError):
        records.final_record("m", SENT, "", AT)


def test_state_from_records_final_wins_then_sent_then_queued():
    sent, *_ = records.sent_records("m", {1: "aa", 2: "bb"}, 2, 5, AT, attempt=1, rounds=1)
    assert records.state_of("m", None, None, None) is None
    s = records.state_of("m", sent, None)
    assert (s.state, s.segments, s.rounds, s.smsc_ids, s.sent_at) == (SENT, 2, 1, ["aa", "bb"], AT)
    d = records.state_of("m", sent, records.final_record("m", FAILED, "receipt UNDELIV", AT))
    assert (d.state, d.reason, d.smsc_ids) == (FAILED, "receipt UNDELIV", ["aa", "bb"])
    refused = records.final_record("m", FAILED, "ESME_RINVDSTADR", AT, segments=1, rounds=1, parts={})
    r = records.state_of("m", None, refused)
    assert (r.state, r.reason, r.segments, r.rounds, r.smsc_ids) == (FAILED, "ESME_RINVDSTADR", 1, 1, [])
    queued = {"_id": "q:m", "segments": 3, "rounds": 1, "parts": [{"seq": 1, "smsc_id": "aa"}]}
    q = records.state_of("m", None, None, queued)
    assert (q.state, q.segments, q.rounds, q.smsc_ids) == (PENDING, 3, 1, ["aa"])


@pytest.mark.parametrize(
    "stats,expected",
    [
        ({}, None),
        ({"a": "DELIVRD"}, None),  # one part still to hear from
        ({"a": "DELIVRD", "b": "DELIVRD", "c": "DELIVRD"}, (DELIVERED, "")),
        ({"b": "UNDELIV"}, (FAILED, "receipt UNDELIV")),  # the first failed part decides at once
        ({"a": "DELIVRD", "b": "EXPIRED", "c": "REJECTD"}, (FAILED, "receipt EXPIRED")),  # in part order
        ({"a": "DELIVRD", "b": "DELIVRD", "c": "UNKNOWN"}, (FAILED, "receipt UNKNOWN")),
        ({"x": "UNDELIV"}, None),  # not one of its parts
    ],
)
def test_settling_from_receipts(stats, expected):
    assert records.settle(["a", "b", "c"], stats) == expected


def test_missing_parts_and_stale_claims():
    assert records.missing_parts(3, [2]) == [1, 3]
    assert records.missing_parts(1, [1]) == []
    bound = dt.timedelta(seconds=3)
    assert not records.is_claim_stale(AT, AT + dt.timedelta(seconds=12), bound)
    assert records.is_claim_stale(AT, AT + dt.timedelta(seconds=14), bound)
