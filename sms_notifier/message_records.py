"""What a message's records look like and what they mean, as pure functions
(no I/O): the `_id` of each record, the documents written, the message's
state read back from whichever records exist, the concatenation reference
derived from the message id, and settling a message from its parts'
delivery receipts.

The collection `sms` is insert-only: a message's state is whichever of its
records exist (message_store.py says who writes which, and when).

    s:{message_id}  SENT: every part accepted. {parts: [{seq, smsc_id}],
                    segments, udh_ref, sent_at, at, attempt, rounds}
    p:{key}         a part, for its receipt, by the canonical key of its SMS
                    centre id (receipts.submit_key). {m: message id, seq, at:
                    when it was submitted, or just before}
    d:{message_id}  final. {state: DELIVERED|FAILED, reason, at} (+ segments,
                    rounds, parts when it failed before SENT)
    r:{key}         a receipt kept aside. {stat, at, sub: its submit date or None}
    a:{message_id}#{n}  claim of attempt n. {at, owner, nonce}

Times are aware UTC datetimes; `at` is every record's retention clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sms_notifier.receipts import DELIVERED as DELIVERED_STATS
from sms_notifier.receipts import INTERMEDIATE as INTERMEDIATE_STATS

PENDING, SENT, DELIVERED, FAILED = "PENDING", "SENT", "DELIVERED", "FAILED"
FINAL = frozenset({DELIVERED, FAILED})


def udh_ref(message_id: str) -> int:
    """The concatenation reference (one octet) of a message: the first byte
    of sha256(message id). Every attempt of a message, on any replica, after
    any restart, carries the same one without storing it first, so a part
    sent again joins its message on the handset instead of starting another."""
    return hashlib.sha256(message_id.encode()).digest()[0]


def sent_id(message_id: str) -> str:
    return f"s:{message_id}"


def final_id(message_id: str) -> str:
    return f"d:{message_id}"


def part_id(smsc_id: str) -> str:
    return f"p:{smsc_id}"


def receipt_id(smsc_id: str) -> str:
    return f"r:{smsc_id}"


def attempt_id(message_id: str, n: int) -> str:
    return f"a:{message_id}#{n}"


def queue_id(message_id: str) -> str:
    """The fallback queue item's `_id` (collection `sms_queue`)."""
    return f"q:{message_id}"


def message_of_queue_id(item_id: str) -> str:
    return item_id.removeprefix("q:")


@dataclass
class MessageState:
    """A message as Send and GetStatus answer it."""

    message_id: str
    state: str
    segments: int = 0
    rounds: int = 0  # rounds of submission so far
    parts: list[tuple[int, str]] = field(default_factory=list)  # (seq, smsc id), in part order
    reason: str = ""
    sent_at: dt.datetime | None = None

    @property
    def smsc_ids(self) -> list[str]:
        return [smsc_id for _, smsc_id in sorted(self.parts)]


def sent_records(
    message_id: str,
    parts: Mapping[int, str],
    segments: int,
    ref: int,
    sent_at: dt.datetime,
    attempt: int,
    rounds: int,
    *,
    key_of: Callable[[str], str] = str,
    part_at: Mapping[int, dt.datetime] | None = None,
) -> list[dict]:
    """`s:` and one `p:` per part: the one insert after the last part was
    accepted (the SENT record, the idempotency record and the receipt
    look-ups at once). `parts`: seq -> the centre's id as it gave it (kept
    in `s:`); `key_of`: its canonical key (`p:`); `part_at`: when each part
    was submitted (default `sent_at`)."""
    ordered = sorted(parts.items())
    times = part_at or {}
    docs = [
        {
            "_id": sent_id(message_id),
            "parts": [{"seq": seq, "smsc_id": smsc_id} for seq, smsc_id in ordered],
            "segments": segments,
            "udh_ref": ref,
            "sent_at": sent_at,
            "at": sent_at,
            "attempt": attempt,
            "rounds": rounds,
        }
    ]
    docs += [
        {"_id": part_id(key_of(smsc_id)), "m": message_id, "seq": seq, "at": times.get(seq, sent_at)}
        for seq, smsc_id in ordered
    ]
    return docs


def final_record(
    message_id: str,
    state: str,
    reason: str,
    at: dt.datetime,
    *,
    segments: int | None = None,
    rounds: int | None = None,
    parts: Mapping[int, str] | None = None,
) -> dict:
    """`d:`: DELIVERED or FAILED. A message that failed before it was SENT
    has no `s:`, so this one also says what was submitted."""
    if state not in FINAL:
        raise ValueError(f"not a final state: {state}")
    doc: dict = {"_id": final_id(message_id), "state": state, "reason": reason, "at": at}
    if segments is not None:
        doc["segments"] = segments
    if rounds is not None:
        doc["rounds"] = rounds
    if parts is not None:
        doc["parts"] = [{"seq": seq, "smsc_id": smsc_id} for seq, smsc_id in sorted(parts.items())]
    return doc


def receipt_record(key: str, stat: str, at: dt.datetime, submitted_at: dt.datetime | None = None) -> dict:
    return {"_id": receipt_id(key), "stat": stat, "at": at, "sub": submitted_at}


def state_of(message_id: str, sent: dict | None, final: dict | None, queued: dict | None = None) -> MessageState | None:
    """The message as its records tell it (None: no record of it). The final
    record wins, then SENT, then a queue item (PENDING)."""
    base = sent or final or queued
    if base is None:
        return None
    parts = [(p["seq"], p["smsc_id"]) for p in base.get("parts", [])]
    state = MessageState(
        message_id,
        PENDING,
        segments=base.get("segments", 0),
        rounds=base.get("rounds", 0),
        parts=parts,
        sent_at=sent["sent_at"] if sent else None,
    )
    if final is not None:
        state.state, state.reason = final["state"], final.get("reason", "")
    elif sent is not None:
        state.state = SENT
    return state


def settle(smsc_ids: Iterable[str], stats: Mapping[str, str]) -> tuple[str, str] | None:
    """(DELIVERED, "") once every part's receipt says delivered; (FAILED,
    "receipt <stat>") as soon as one part's says it failed, in part order;
    None while that cannot be told yet. `stats`: receipt stat by SMS
    centre id, for the parts whose receipt came."""
    missing = False
    for smsc_id in smsc_ids:
        stat = stats.get(smsc_id)
        if stat is None:
            missing = True
        elif stat not in DELIVERED_STATS:
            return FAILED, f"receipt {stat}"
    return None if missing else (DELIVERED, "")


NO_RECEIPT = "no receipt"


def settle_at_window(smsc_ids: Iterable[str], stats: Mapping[str, str]) -> tuple[str, str] | None:
    """A message whose receipt window closed, from what arrived: a failed
    part fails it, else a delivered part delivers it (centres that send one
    receipt for a whole long message, on its first or its last part); None
    when no part's receipt says how it ended (the caller asks the centre, or
    gives up with FAILED "no receipt")."""
    ids = list(smsc_ids)
    decided = settle(ids, stats)
    if decided is not None:
        return decided
    known = [stats[i] for i in ids if i in stats and stats[i] not in INTERMEDIATE_STATS]
    if any(stat in DELIVERED_STATS for stat in known):
        return DELIVERED, ""
    return None


@dataclass(frozen=True)
class PartAt:
    """A submission a centre id named: the message and when its part went
    (a lower bound)."""

    message_id: str
    at: dt.datetime


def receipt_fits(
    part_at: dt.datetime, receipt_submitted: dt.datetime | None, slack: dt.timedelta, *, exact: bool = False
) -> bool:
    """Whether a receipt can be about a part submitted at `part_at`: its
    submit date (minute precision, the centre's clock) is not earlier than
    the part's submission, `slack` allowed for the clocks; with `exact`
    (`part_at` is when the part went, not a lower bound) not later either.
    A receipt that gives no submit date fits."""
    if receipt_submitted is None:
        return True
    minute = part_at.replace(second=0, microsecond=0)
    if receipt_submitted < minute - slack:
        return False
    return not exact or receipt_submitted <= part_at + slack


def pick_part(
    candidates: Sequence[PartAt],
    receipt_submitted: dt.datetime | None,
    unsettled: Callable[[str], bool],
    slack: dt.timedelta,
) -> str | None:
    """Which submission a receipt settles when a centre id names several (the
    centre reuses ids: its counter wraps, or it restarted): the newest one
    still unsettled whose submission the receipt's submit date matches
    (receipt_fits, `exact`: the candidates' times are when their parts went);
    never a settled one, never one submitted after or well before it."""
    fitting = [
        c for c in candidates if unsettled(c.message_id) and receipt_fits(c.at, receipt_submitted, slack, exact=True)
    ]
    return max(fitting, key=lambda c: c.at).message_id if fitting else None


def missing_parts(total: int, accepted: Iterable[int]) -> list[int]:
    """The part numbers (1-based) still to submit."""
    done = set(accepted)
    return [seq for seq in range(1, total + 1) if seq not in done]


def is_claim_stale(claimed_at: dt.datetime, now: dt.datetime, attempt_bound: dt.timedelta) -> bool:
    """Whether the attempt that holds a claim is surely over: an attempt
    submits nothing after its time bound and records right after, so a
    claim older than the bound plus a margin belongs to an attempt that
    ended (recorded, queued, or died)."""
    return now - claimed_at > attempt_bound + dt.timedelta(seconds=10)
