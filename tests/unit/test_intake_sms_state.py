"""GetQuery's result-SMS state (issue 14 item 4: "a settled message costs no
more look-ups"): the notifier is asked while the message may still change,
and never again on this replica once it reported a final state."""

from __future__ import annotations

import datetime as dt

import grpc

from aggregator import request_rules
from aggregator.intake import Intake
from aggregator.query_store import Query, ResultSms
from tests.unit.intake_fakes import HASHER, intake_over
from yztc.v1 import sms_notifier_pb2

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


class _Notifier:
    def __init__(self, *states: int) -> None:
        self.states = list(states)
        self.asked: list[str] = []

    async def GetStatus(self, request, timeout=None):
        self.asked.append(request.message_id)
        state = self.states.pop(0)
        if state < 0:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None)
        return sms_notifier_pb2.SmsStatus(state=state)


class _Queries:
    """Each read is a fresh Query, as the database would give."""

    async def get(self, query_id: str) -> Query:
        return Query(
            id=query_id,
            phone_hash="h",
            phone_box={},
            phone_masked="138****8000",
            channel="wechat-demo",
            requester_tag=request_rules.requester_tag(HASHER, "wechat-demo", "r-1"),
            consent={},
            trace={},
            created_at=NOW,
            deliver_by=NOW,
            finalize_at=NOW,
            companies={},
            sms=ResultSms(message_id=f"result:{query_id}", state="SENT", handed_over=True),
            status="COMPLETED",
        )


def _intake(notifier: _Notifier) -> Intake:
    return intake_over(_Queries(), notifier)


async def test_a_message_still_on_its_way_is_asked_about_each_time():
    S = sms_notifier_pb2.SmsStatus
    notifier = _Notifier(S.STATE_SENT, S.STATE_SENT, S.STATE_DELIVERED)
    intake = _intake(notifier)
    states = [(await intake.get("q1", "wechat-demo", "r-1")).sms.state for _ in range(3)]
    assert states == ["SENT", "SENT", "DELIVERED"]
    assert len(notifier.asked) == 3


async def test_a_settled_message_costs_no_more_look_ups():
    S = sms_notifier_pb2.SmsStatus
    for final, shown in ((S.STATE_DELIVERED, "DELIVERED"), (S.STATE_FAILED, "FAILED")):
        notifier = _Notifier(final)
        intake = _intake(notifier)
        states = [(await intake.get("q1", "wechat-demo", "r-1")).sms.state for _ in range(5)]
        assert states == [shown] * 5
        assert notifier.asked == ["result:q1"]


async def test_an_unreachable_notifier_shows_what_was_last_known_and_is_asked_again():
    S = sms_notifier_pb2.SmsStatus
    notifier = _Notifier(-1, S.STATE_DELIVERED)
    intake = _intake(notifier)
    assert (await intake.get("q1", "wechat-demo", "r-1")).sms.state == "SENT"
    assert (await intake.get("q1", "wechat-demo", "r-1")).sms.state == "DELIVERED"
    assert len(notifier.asked) == 2


async def test_another_requester_reads_nothing_and_asks_nothing():
    notifier = _Notifier()
    intake = _intake(notifier)
    try:
        await intake.get("q1", "wechat-demo", "r-2")
    except Exception as error:  # ServiceError NOT_FOUND
        assert getattr(error, "code", None) == "NOT_FOUND"
    else:
        raise AssertionError("another requester read the query")
    assert notifier.asked == []
