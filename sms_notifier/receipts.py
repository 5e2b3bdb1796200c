"""Delivery receipts: a deliver_sm whose esm_class says "SMSC delivery
receipt", carrying the submitted part's message id and its final state, in
the optional parameters (receipted_message_id, message_state; SMPP 3.4
§5.3.2.12/.35) and, by the de-facto format of SMPP 3.4 Appendix B, in the
text ("id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD err:…").

The centre's id, whatever form a receipt writes it in. Centres answer
submit_sm_resp with one form of the id and write receipts in another: hex in
the response and the same number in decimal in the receipt text
("0D2B5E44" → "id:0220945988"), another letter case, leading zeros (Kannel's
`msg-id-type` exists for exactly this). Each id is turned into one canonical
key (`submit_key`, `receipt_keys`, pure functions); how a receipt's id may
relate to the response's is the centre's setting (`IdForm`,
YZTC_NOTIFIER_RECEIPT_ID_FORM), for the forms that cannot be told apart by
looking (an all-digit id can be decimal or hex):

- `auto` (default): the receipt's id as written (case and leading zeros
  aside), else read as the decimal form of a hex response id, else as the
  hex form of a decimal one, in that order; the first that names a part
  awaiting its receipt wins;
- `hex`: the same digits as the response (case and leading zeros aside);
- `decimal`: the decimal form of the response's hex number;
- `as_is`: exactly the response's string (ids that are not numbers).

The canonical key of a number is its lower-case hex digits without leading
zeros; an id that is not all hex digits is its own key.

Also here: the receipt's `submit date`/`done date` (the centre's local time,
YYMMDDhhmm[ss]), and the bounded set of names a receipt's state is counted
under (a centre's free text never becomes a metric label)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Literal

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427

# esm_class bits 2-5 are the message type; 0b0001 = SMSC delivery receipt.
_MESSAGE_TYPE_MASK = 0x3C
_DELIVERY_RECEIPT = 0x04

# message_state values (§5.2.28) as the receipt text spells them.
STATE_NAMES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
DELIVERED = frozenset({"DELIVRD"})
# Not final: a later receipt says how it ended.
INTERMEDIATE = frozenset({"ENROUTE", "ACCEPTD"})
FAILED = frozenset({"EXPIRED", "DELETED", "UNDELIV", "UNKNOWN", "REJECTD"})
# What a stat is counted and reported under: the names above, else OTHER (a
# centre's own codes, e.g. CMPP gateways' "MK:0001", or anything at all).
OTHER = "OTHER"
STAT_LABELS = DELIVERED | INTERMEDIATE | FAILED | {OTHER}

IdForm = Literal["auto", "hex", "decimal", "as_is"]
ID_FORMS: tuple[str, ...] = ("auto", "hex", "decimal", "as_is")
# SMPP message_id is a C-Octet String of at most 65 octets (§5.2.23).
MAX_ID_LENGTH = 65

_ID = re.compile(rb"\bid:(\S+)", re.IGNORECASE)
_STAT = re.compile(rb"\bstat:(\S+)", re.IGNORECASE)
_SUBMIT_DATE = re.compile(rb"\bsubmit date:(\d{10}(?:\d{2})?)\b", re.IGNORECASE)
_DONE_DATE = re.compile(rb"\bdone date:(\d{10}(?:\d{2})?)\b", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Receipt:
    """A final or intermediate receipt for one part. `smsc_message_id`: the id
    as the receipt wrote it; `keys`: the canonical keys it may stand for, best
    first (receipt_keys); `stat`: one of STAT_LABELS; `submitted_at` /
    `done_at`: the receipt's dates as aware datetimes, None when it gave none."""

    smsc_message_id: str
    stat: str  # DELIVRD, UNDELIV, ..., or OTHER
    keys: tuple[str, ...] = ()
    submitted_at: dt.datetime | None = field(default=None, compare=False)
    done_at: dt.datetime | None = field(default=None, compare=False)
    raw_stat: str = field(default="", compare=False)  # as the centre wrote it (logs only)

    def __post_init__(self) -> None:
        if not self.keys:
            object.__setattr__(self, "keys", receipt_keys(self.smsc_message_id, "as_is"))

    @property
    def final(self) -> bool:
        return self.stat not in INTERMEDIATE

    @property
    def delivered(self) -> bool:
        return self.stat in DELIVERED


def stat_label(stat: str) -> str:
    """The receipt state a centre wrote, as one of STAT_LABELS."""
    upper = stat.strip().upper()
    return upper if upper in STAT_LABELS else OTHER


# -- ids -------------------------------------------------------------------------


def _number_key(digits: str, base: int) -> str:
    return format(int(digits, base), "x")


def submit_key(smsc_id: str, form: IdForm = "auto") -> str:
    """The canonical key of an id a submit response gave."""
    if form == "as_is" or not _HEX.fullmatch(smsc_id):
        return smsc_id
    return _number_key(smsc_id, 16)


def receipt_keys(smsc_id: str, form: IdForm = "auto") -> tuple[str, ...]:
    """The canonical keys a receipt's id may stand for, best first: the key of
    the submit response id it reports on is among them (see the module's
    docstring for each form)."""
    if form == "as_is" or not _HEX.fullmatch(smsc_id):
        return (smsc_id,)
    digits = _DIGITS.fullmatch(smsc_id) is not None
    if form == "hex":
        return (_number_key(smsc_id, 16),)
    if form == "decimal":
        return (_number_key(smsc_id, 10),) if digits else (_number_key(smsc_id, 16),)
    keys = [_number_key(smsc_id, 16)]
    if digits:
        keys.append(_number_key(smsc_id, 10))  # decimal here, hex in the response
    keys.append(submit_key(str(int(smsc_id, 16))))  # hex here, decimal in the response
    if smsc_id not in keys:
        keys.append(smsc_id)  # a part recorded before ids were made canonical
    return tuple(dict.fromkeys(keys))


# -- dates -----------------------------------------------------------------------


def receipt_time(text: str, utc_offset: dt.timedelta) -> dt.datetime | None:
    """`YYMMDDhhmm` or `YYMMDDhhmmss` in the centre's local time (UTC +
    `utc_offset`) as an aware UTC datetime; None if it is no such time."""
    if not (len(text) in (10, 12) and text.isdigit()):
        return None
    try:
        local = dt.datetime.strptime(text, "%y%m%d%H%M%S" if len(text) == 12 else "%y%m%d%H%M")
    except ValueError:
        return None
    return (local - utc_offset).replace(tzinfo=dt.UTC)


def _date(pattern: re.Pattern[bytes], text: bytes, utc_offset: dt.timedelta) -> dt.datetime | None:
    found = pattern.search(text)
    return receipt_time(found.group(1).decode("ascii"), utc_offset) if found else None


# -- SMPP deliver_sm ----------------------------------------------------------------


def is_receipt(esm_class: int) -> bool:
    return esm_class & _MESSAGE_TYPE_MASK == _DELIVERY_RECEIPT


def parse(
    esm_class: int,
    short_message: bytes,
    tlvs: dict[int, bytes],
    form: IdForm = "auto",
    utc_offset: dt.timedelta = dt.timedelta(hours=8),
) -> Receipt | None:
    """The receipt in a deliver_sm, or None if it is not one (a mobile-originated
    SMS) or names no message (or an id longer than SMPP allows). `form`: how the
    centre writes ids (IdForm); `utc_offset`: the centre's local time, which
    the receipt's dates are written in (China: +8 h)."""
    if not is_receipt(esm_class):
        return None
    smsc_id = _c_string(tlvs.get(TLV_RECEIPTED_MESSAGE_ID))
    state = tlvs.get(TLV_MESSAGE_STATE)
    raw_stat = STATE_NAMES.get(state[0], "UNKNOWN") if state and len(state) == 1 else None
    if not smsc_id and (found := _ID.search(short_message)):
        smsc_id = found.group(1).decode("ascii", "replace")
    if raw_stat is None and (found := _STAT.search(short_message)):
        raw_stat = found.group(1).decode("ascii", "replace")[:16]
    if not smsc_id or not raw_stat or len(smsc_id) > MAX_ID_LENGTH:
        return None
    return Receipt(
        smsc_id,
        stat_label(raw_stat),
        receipt_keys(smsc_id, form),
        _date(_SUBMIT_DATE, short_message, utc_offset),
        _date(_DONE_DATE, short_message, utc_offset),
        raw_stat,
    )


def _c_string(value: bytes | None) -> str:
    if not value:
        return ""
    return value.split(b"\x00", 1)[0].decode("ascii", "replace")
