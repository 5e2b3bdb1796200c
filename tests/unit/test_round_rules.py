"""The rules of a query's rounds (aggregator/round_rules.py), on values only."""

import datetime as dt
import random

import pytest

from aggregator.company_calls import Answer
from aggregator.policy import CompanyPolicy
from aggregator.query_store import COMPLETED, DONE, FAILED, IN_PROGRESS, PARTIAL, PENDING, Part
from aggregator.round_rules import apply_answer, decide_status, due_companies, next_round_at

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
POLICY = CompanyPolicy(poll_base_seconds=0.2, poll_max_seconds=1.0, backoff_base_seconds=2.0, backoff_max_seconds=60.0)


def test_due_companies_are_pending_callable_and_due():
    parts = {
        "new": Part(),
        "now": Part(next_at=NOW),
        "later": Part(next_at=NOW + S),
        "done": Part(state=DONE, next_at=NOW),
        "failed": Part(state=FAILED, next_at=NOW),
        "removed": Part(next_at=NOW),  # taken out of the configuration
    }
    callable_ids = {"new", "now", "later", "done", "failed"}
    assert due_companies(parts, callable_ids, NOW) == ["new", "now"]
    assert due_companies(parts, callable_ids, NOW + S) == ["new", "now", "later"]


def test_a_done_answer_settles_the_part():
    part = Part(polls=2, ticket="t", error="UNAVAILABLE", next_at=NOW - S)
    apps = [{"name": "微信", "count": 2}]
    assert apply_answer(part, Answer("done", count=2, apps=apps), POLICY, NOW, random.Random(1)) is None
    assert part == Part(state=DONE, count=2, apps=apps, polls=2, next_at=None)


def test_accepted_answers_poll_with_growing_waits_up_to_the_cap():
    part = Part()
    waits = []
    for i in range(6):
        wait = apply_answer(part, Answer("accepted", ticket=f"t{i}"), POLICY, NOW, random.Random(1))
        waits.append(wait)
        assert part.next_at == NOW + dt.timedelta(seconds=wait)
        assert part.ticket == f"t{i}" and part.state == PENDING
    assert waits == pytest.approx([0.2, 0.3, 0.45, 0.675, 1.0, 1.0])
    assert part.polls == 6 and part.attempts == 0


def test_a_retry_counts_an_attempt_unless_the_circuit_is_open():
    part = Part()
    assert apply_answer(part, Answer("retry", retry_in=3.0, error="UNAVAILABLE"), POLICY, NOW, random.Random(1)) == 3.0
    assert (part.state, part.attempts, part.error, part.next_at) == (PENDING, 1, "UNAVAILABLE", NOW + 3 * S)

    assert apply_answer(part, Answer("retry", retry_in=7.5, error="CIRCUIT_OPEN"), POLICY, NOW, random.Random(1)) == 7.5
    assert (part.state, part.attempts, part.error, part.next_at) == (PENDING, 1, "CIRCUIT_OPEN", NOW + 7.5 * S)


def test_a_failure_with_a_ticket_asks_afresh_after_a_backoff():
    part = Part(ticket="lost", polls=3, attempts=1)
    wait = apply_answer(part, Answer("failed", error="NOT_FOUND"), POLICY, NOW, random.Random(1))
    # Second attempt: full jitter in [base * 2 / 2, base * 2].
    assert wait is not None and 2.0 <= wait <= 4.0
    assert part.state == PENDING and part.ticket == "" and part.attempts == 2
    assert part.next_at == NOW + dt.timedelta(seconds=wait)


def test_a_failure_without_a_ticket_fails_the_part():
    part = Part(attempts=2)
    assert apply_answer(part, Answer("failed", error="INVALID_ARGUMENT"), POLICY, NOW, random.Random(1)) is None
    assert (part.state, part.error, part.next_at, part.attempts) == (FAILED, "INVALID_ARGUMENT", None, 2)


FINAL = NOW + 60 * S


def test_status_completed_when_every_company_answered():
    parts = {"a": Part(state=DONE), "b": Part(state=DONE)}
    assert decide_status(parts, NOW, FINAL) == COMPLETED


def test_status_partial_as_soon_as_all_settled_with_a_failure():
    parts = {"a": Part(state=DONE), "b": Part(state=FAILED)}
    assert decide_status(parts, NOW, FINAL) == PARTIAL


def test_status_in_progress_until_the_finalize_moment_then_partial():
    parts = {"a": Part(state=DONE), "b": Part()}
    assert decide_status(parts, FINAL - dt.timedelta(microseconds=1), FINAL) == IN_PROGRESS
    assert decide_status(parts, FINAL, FINAL) == PARTIAL


LATE = NOW + 600 * S


def test_no_next_round_when_finished_and_nothing_live():
    parts = {"a": Part(state=DONE), "b": Part(state=FAILED), "removed": Part(next_at=NOW)}
    assert next_round_at(parts, {"a", "b"}, PARTIAL, NOW, FINAL, LATE) is None
    assert next_round_at({"a": Part(state=DONE)}, {"a"}, COMPLETED, NOW, FINAL, LATE) is None


def test_in_progress_next_round_is_the_earliest_due_part_or_the_finalize_moment():
    parts = {"a": Part(next_at=NOW + 5 * S), "b": Part(next_at=NOW + 3 * S), "c": Part(state=DONE)}
    assert next_round_at(parts, {"a", "b", "c"}, IN_PROGRESS, NOW, FINAL, LATE) == NOW + 3 * S
    parts = {"a": Part(next_at=NOW + 120 * S)}
    assert next_round_at(parts, {"a"}, IN_PROGRESS, NOW, FINAL, LATE) == FINAL  # the horizon
    assert next_round_at({"a": Part()}, {"a"}, IN_PROGRESS, NOW, FINAL, LATE) == NOW  # never asked: now
    # Only a company taken out of the configuration pending: wait for the deadline.
    assert next_round_at({"gone": Part(next_at=NOW)}, set(), IN_PROGRESS, NOW, FINAL, LATE) == FINAL


def test_late_answers_are_waited_for_until_the_late_window_closes():
    parts = {"a": Part(state=DONE), "b": Part(next_at=FINAL + 30 * S)}
    assert next_round_at(parts, {"a", "b"}, PARTIAL, FINAL, FINAL, LATE) == FINAL + 30 * S
    parts["b"].next_at = LATE + 30 * S
    assert next_round_at(parts, {"a", "b"}, PARTIAL, FINAL, FINAL, LATE) == LATE  # the horizon
    assert next_round_at(parts, {"a", "b"}, PARTIAL, LATE, FINAL, LATE) is None  # window closed
