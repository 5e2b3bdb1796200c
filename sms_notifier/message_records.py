"""What a message's records look like and what they mean, as pure functions
(no I/O): the `_id` of each record, the documents written, the message's
state read back from whichever records exist, the concatenation reference
derived from the message id, and settling a message from its parts'
delivery receipts.

The collection `sms` is insert-only: a message's state is whichever of its
records exist (message_store.py says who writes which, and when).

    s:{message_id}  SENT: every part accepted. {parts: [{seq, smsc_id}],
                    segments, udh_ref, sent_at, at, attempt, rounds}
    p:{smsc_id}     a part, for its receipt. {m: message id, seq, at}
    d:{message_id}  final. {state: DELIVERED|FAILED, reason, at} (+ segments,
                    rounds, parts when it failed before SENT)
    r:{smsc_id}     a receipt kept aside. {stat, at}
    a:{message_id}#{n}  claim of attempt n. {at, owner, nonce}

Times are aware UTC datetimes; `at` is every record's retention clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sms_notifier.receipts import DELIVERED as DELIVERED_STATS

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
) -> list[dict]:
    """`s:` and one `p:` per part: the one insert after the last part was
    accepted (the SENT record, the idempotency record and the receipt
    look-ups at once)."""
    ordered = sorted(parts.items())
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
    docs += [{"_id": part_id(smsc_id), "m": message_id, "seq": seq, "at": sent_at} for seq, smsc_id in ordered]
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


def receipt_record(smsc_id: str, stat: str, at: dt.datetime) -> dict:
    return {"_id": receipt_id(smsc_id), "stat": stat, "at": at}


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
