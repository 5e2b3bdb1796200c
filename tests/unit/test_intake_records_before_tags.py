"""GetQuery of a record made before requester ids were kept as keyed tags
(review L6): its requester reads it at once, not only after the retention
pass has turned the id into its tag; anyone else still reads nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from aggregator import request_rules
from aggregator.intake import Intake
from aggregator.query_store import Query, ResultSms
from tests.unit.intake_fakes import HASHER, intake_over
from yztc.errors import ServiceError

NOW = dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)
REQUESTER = "2088000000000001"


def _record_before_tags(query_id: str) -> Query:
    """A record as an aggregator before keyed tags wrote it: the requester
    id itself, no tag."""
    doc = Query(
        id=query_id,
        phone_hash="h",
        phone_box={},
        phone_masked="138****8000",
        channel="wechat-demo",
        requester_tag="",
        consent={},
        trace={},
        created_at=NOW,
        deliver_by=NOW,
        finalize_at=NOW,
        companies={},
        sms=ResultSms(message_id=f"result:{query_id}", state="DELIVERED", handed_over=True),
        status="COMPLETED",
    ).to_doc()
    del doc["requester"]
    return Query.from_doc(doc | {"requester_id": REQUESTER})


class _OldRecords:
    async def get(self, query_id: str) -> Query:
        return _record_before_tags(query_id)


def _intake() -> Intake:
    return intake_over(_OldRecords())


async def test_its_requester_reads_a_record_made_before_tags():
    query = await _intake().get("q1", "wechat-demo", REQUESTER)
    assert query.id == "q1" and query.status == "COMPLETED"


@pytest.mark.parametrize(("channel", "requester"), [("wechat-demo", "2088000000000002"), ("gov-app", REQUESTER)])
async def test_nobody_else_reads_it(channel, requester):
    with pytest.raises(ServiceError) as refused:
        await _intake().get("q1", channel, requester)
    assert refused.value.code == "NOT_FOUND"


def test_the_tag_it_is_judged_by_is_the_one_retention_will_write():
    query = _record_before_tags("q2")
    expected = request_rules.requester_tag(HASHER, "wechat-demo", REQUESTER)
    assert query.requester_tag == "" and query.current_requester_tag(HASHER) == expected
    query.tag_requester(HASHER)
    assert query.requester_tag == expected and "requester_id" not in query.to_doc()
