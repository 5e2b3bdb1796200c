"""The rules of a query's rounds, as pure functions on typed values (the
clock and randomness are arguments): which companies are due, what an
answer does to a company's part, what the query's status is, and when its
next round is. `engine.py` runs rounds with them; tested without I/O.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Collection, Mapping

from aggregator.company_calls import Answer
from aggregator.policy import CompanyPolicy, backoff
from aggregator.query_store import COMPLETED, DONE, FAILED, IN_PROGRESS, PARTIAL, PENDING, Part


def due_companies(parts: Mapping[str, Part], callable_ids: Collection[str], now: dt.datetime) -> list[str]:
    """Pending parts we can ask (a company taken out of the configuration is
    not asked) whose next try is due."""
    return [
        cid
        for cid, part in parts.items()
        if part.state == PENDING and cid in callable_ids and (part.next_at is None or part.next_at <= now)
    ]


def apply_answer(
    part: Part, answer: Answer, policy: CompanyPolicy, now: dt.datetime, rng: random.Random
) -> float | None:
    """Updates `part` with one call's answer. Returns None when the part is
    settled (DONE or FAILED; it then has no `next_at`), else the seconds until it should be asked
    again (also set as `part.next_at`)."""
    if answer.kind == "done":
        part.state, part.count, part.apps = DONE, answer.count, answer.apps
        part.ticket, part.next_at, part.error = "", None, ""
        return None
    if answer.kind == "accepted":
        part.polls += 1
        part.ticket = answer.ticket
        wait = min(policy.poll_max_seconds, policy.poll_base_seconds * 1.5 ** (part.polls - 1))
    elif answer.kind == "retry":
        if answer.error != "CIRCUIT_OPEN":
            part.attempts += 1
        part.error = answer.error
        wait = answer.retry_in
    elif part.ticket:
        # The company lost our ticket (e.g. restarted): ask afresh.
        part.ticket = ""
        part.attempts += 1
        wait = backoff(part.attempts, policy.backoff_base_seconds, policy.backoff_max_seconds, rng)
    else:
        part.state, part.error, part.next_at = FAILED, answer.error, None
        return None
    part.next_at = now + dt.timedelta(seconds=wait)
    return wait


def decide_status(parts: Mapping[str, Part], now: dt.datetime, finalize_at: dt.datetime) -> str:
    """IN_PROGRESS while a part is pending and the deadline is not near;
    then COMPLETED if every company answered, else PARTIAL (CONTRACT)."""
    pending = any(p.state == PENDING for p in parts.values())
    if not pending:
        return COMPLETED if all(p.state == DONE for p in parts.values()) else PARTIAL
    return PARTIAL if now >= finalize_at else IN_PROGRESS


def next_round_at(
    parts: Mapping[str, Part],
    callable_ids: Collection[str],
    status: str,
    now: dt.datetime,
    finalize_at: dt.datetime,
    late_until: dt.datetime,
) -> dt.datetime | None:
    """When the next round is due, or None when the query is done for good:
    finished and no company we can ask is pending, or past the window in
    which late answers are still recorded after the SMS went out."""
    live = [cid for cid, p in parts.items() if p.state == PENDING and cid in callable_ids]
    if status != IN_PROGRESS and not (live and now < late_until):
        return None
    horizon = finalize_at if status == IN_PROGRESS else late_until
    return min([parts[cid].next_at or now for cid in live] + [horizon])
