"""A phone's state and the rules on it, as pure functions on typed values
(no I/O; the clock is an argument). `phone_store.py` keeps the state in
MongoDB; `intake.py` decides with these rules and commits through the store.

A phone's whole state (its current verification code and the attempts at
it, the codes sent in the last 24 hours, a lock from a failed identity
check, its last query) is one value, `Phone`, at a version `v`. Every change
is an `Event` taken as claim `v:<phone hash>:<v+1>` (a unique insert,
yztc/claims.py): the claim chain is the truth, the stored document a cache
of it at some version, and `apply` folds an event onto the state before it.
The outcome of an attempt is decided by whoever claims it, on the state it
claims at, and recorded in the event, so everyone folding computes the same
state.

Rules (MISSION "Privacy and abuse", CONTRACT "Errors"):
- a code is valid 5 minutes; one send per 60 s and 5 per 24 h per phone;
- a code is bound to the channel and requester that asked for it (its
  `owner`, request_rules.requester_tag): presented by anyone else it is
  not compared and not counted, so nobody but its requester can guess at
  it or kill it (security review M6);
- 5 wrong attempts kill the code; a guess that races a guess of another code
  at the same version counts as wrong too (concurrent guessing is brute
  force, and so the count cannot be outrun by concurrency);
- a failed identity check locks the number 24 hours;
- one running query per phone, and none within 24 h of a completed one.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, field, replace
from typing import Literal

CODE_TTL = dt.timedelta(minutes=5)
RESEND_AFTER = dt.timedelta(seconds=60)
SENDS_PER_DAY = 5
DAY = dt.timedelta(hours=24)
MAX_WRONG_ATTEMPTS = 5
LOCK = dt.timedelta(hours=24)
QUERY_COOLDOWN = dt.timedelta(hours=24)
# A claimed query whose work item is not there yet is taken as running this
# long (the claimer is still asking the operator); past it, as never made.
ORPHAN_AFTER = dt.timedelta(seconds=30)
# A query finishes within 48 h of acceptance and then limits the phone for
# 24 h: older `last` queries need no look-up.
LAST_MATTERS_FOR = dt.timedelta(hours=72)


@dataclass(frozen=True)
class Code:
    """The phone's current code: only its keyed hash (personal_data.code_hash),
    and who asked for it (`owner`: request_rules.requester_tag of the channel
    and requester; intake always presents one, so a code from before codes
    were bound, owned by "", answers to no caller)."""

    id: str
    hmac: str
    expires_at: dt.datetime
    failures: int = 0
    used_by: str | None = None  # the query id it was used for
    owner: str = ""

    @property
    def dead(self) -> bool:
        return self.failures >= MAX_WRONG_ATTEMPTS


@dataclass(frozen=True)
class LastQuery:
    query_id: str
    accepted_at: dt.datetime


@dataclass(frozen=True)
class Phone:
    hash: str
    v: int = 0
    code: Code | None = None
    sends: tuple[dt.datetime, ...] = ()
    lock_until: dt.datetime | None = None
    last: LastQuery | None = None
    # The `last` before the current one: restored when the current one's
    # query is not made after all (operator refused, dependency down).
    before_last: LastQuery | None = None


EventKind = Literal["code", "wrong", "accept", "lock", "void", "give_back"]


@dataclass(frozen=True)
class Event:
    """One change of a phone, as written in its claim.

    code: a new code was sent (`code`); wrong: a wrong (or racing) attempt;
    accept: the code was used for query `query_id`; lock: the operator said
    phone and ID six do not match (`until`; the code is not spent); void: query `query_id` was not
    made (number cancelled); give_back: not made for our own fault (a
    dependency down), and the code may be used again."""

    kind: EventKind
    at: dt.datetime
    code: Code | None = None
    query_id: str | None = None
    until: dt.datetime | None = None
    extra: dict = field(default_factory=dict, compare=False)


def apply(phone: Phone, event: Event) -> Phone:
    """The state after `event` (version + 1)."""
    v = phone.v + 1
    if event.kind == "code":
        assert event.code is not None
        sends = (*phone.sends, event.at)[-SENDS_PER_DAY:]
        return replace(phone, v=v, code=event.code, sends=sends)
    if event.kind == "wrong":
        code = phone.code and replace(phone.code, failures=phone.code.failures + 1)
        return replace(phone, v=v, code=code)
    if event.kind == "accept":
        assert event.query_id is not None
        code = phone.code and replace(phone.code, used_by=event.query_id)
        return replace(phone, v=v, code=code, last=LastQuery(event.query_id, event.at), before_last=phone.last)
    if event.kind in ("lock", "void", "give_back"):
        last = phone.last
        if last is not None and last.query_id == event.query_id:
            last = phone.before_last
        code = phone.code
        # Given back (our fault) or locked (the lock, not the spent code, now
        # answers: the person who corrects the ID six is told of the lock).
        if event.kind in ("give_back", "lock") and code is not None and code.used_by == event.query_id:
            code = replace(code, used_by=None)
        lock_until = event.until if event.kind == "lock" else phone.lock_until
        return replace(phone, v=v, code=code, last=last, lock_until=lock_until)
    raise ValueError(f"unknown event {event.kind}")


# -- sending codes ------------------------------------------------------------


def next_send_allowed(phone: Phone, now: dt.datetime) -> dt.datetime | None:
    """None if a code may be sent now; else when one may (RATE_LIMITED)."""
    if phone.sends and now < phone.sends[-1] + RESEND_AFTER:
        return phone.sends[-1] + RESEND_AFTER
    recent = [at for at in phone.sends if now < at + DAY]
    if len(recent) >= SENDS_PER_DAY:
        return recent[-SENDS_PER_DAY] + DAY
    return None


# -- attempts -------------------------------------------------------------------

Verdict = Literal["wrong", "dead", "expired", "used", "right"]


def judge_code(phone: Phone, presented_hmac: str, now: dt.datetime, owner: str = "") -> Verdict:
    """What a code presented by `owner` (request_rules.requester_tag) is
    worth, on this state. "dead": there is no live code for this presenter
    (none, killed by wrong attempts, or asked for by another requester: not
    compared, and nothing to count). "used" means it is the code a query was
    already accepted with (a repeat of that submission)."""
    code = phone.code
    if code is None or code.dead or not hmac.compare_digest(code.owner, owner):
        return "dead"
    if not hmac.compare_digest(code.hmac, presented_hmac):
        return "wrong"
    if code.used_by is not None:
        return "used"
    if now >= code.expires_at:
        return "expired"
    return "right"


def seconds_until(moment: dt.datetime, now: dt.datetime) -> int:
    """Whole seconds, at least 1: the `retry_after` of CONTRACT errors."""
    return max(1, int((moment - now).total_seconds() + 0.999))


def locked_until(phone: Phone, now: dt.datetime) -> dt.datetime | None:
    return phone.lock_until if phone.lock_until is not None and now < phone.lock_until else None


LastState = Literal["none", "look_up"]


def last_query_state(phone: Phone, now: dt.datetime) -> LastState:
    """Whether the phone's last query can still stop a new one: "none" (no
    last query, or too old to matter), "look_up" (its record decides: running,
    or completed within 24 h; a look-up that finds nothing is decided by
    `unmade_query_blocks`)."""
    last = phone.last
    if last is None or now - last.accepted_at > LAST_MATTERS_FOR:
        return "none"
    return "look_up"


def unmade_query_blocks(last: LastQuery, now: dt.datetime) -> bool:
    """A claimed query with neither work item nor record: still being made
    (within ORPHAN_AFTER), or abandoned by a crashed claimer (then ignored)."""
    return now - last.accepted_at < ORPHAN_AFTER


def cooldown_until(completed_at: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """QUERY_LIMITED until this moment, or None."""
    if completed_at is None:
        return None
    until = completed_at + QUERY_COOLDOWN
    return until if now < until else None
