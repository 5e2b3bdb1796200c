"""Delivery receipts: a deliver_sm whose esm_class says "SMSC delivery
receipt", carrying the submitted part's message id and its final state, in
the optional parameters (receipted_message_id, message_state; SMPP 3.4
§5.3.2.12/.35) and, by the de-facto format of SMPP 3.4 Appendix B, in the
text ("id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD err:…")."""

from __future__ import annotations

import re
from dataclasses import dataclass

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427

# esm_class bits 2-5 are the message type; 0b0001 = SMSC delivery receipt.
_MESSAGE_TYPE_MASK = 0x3C
_DELIVERY_RECEIPT = 0x04

# message_state values (§5.2.28) as the receipt text spells them.
_STATE_NAMES = {
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
FAILED = frozenset({"EXPIRED", "DELETED", "UNDELIV", "UNKNOWN", "REJECTD"})

_ID = re.compile(rb"\bid:(\S+)", re.IGNORECASE)
_STAT = re.compile(rb"\bstat:(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Receipt:
    smsc_message_id: str
    stat: str  # DELIVRD, UNDELIV, ...

    @property
    def final(self) -> bool:
        return self.stat in DELIVERED or self.stat in FAILED

    @property
    def delivered(self) -> bool:
        return self.stat in DELIVERED


def is_receipt(esm_class: int) -> bool:
    return esm_class & _MESSAGE_TYPE_MASK == _DELIVERY_RECEIPT


def parse(esm_class: int, short_message: bytes, tlvs: dict[int, bytes]) -> Receipt | None:
    """The receipt in a deliver_sm, or None if it is not one (a mobile-originated SMS)
    or names no message."""
    if not is_receipt(esm_class):
        return None
    smsc_id = _c_string(tlvs.get(TLV_RECEIPTED_MESSAGE_ID))
    state = tlvs.get(TLV_MESSAGE_STATE)
    stat = _STATE_NAMES.get(state[0], "UNKNOWN") if state and len(state) == 1 else None
    if not smsc_id and (found := _ID.search(short_message)):
        smsc_id = found.group(1).decode("ascii", "replace")
    if stat is None and (found := _STAT.search(short_message)):
        stat = found.group(1).decode("ascii", "replace").upper()
    if not smsc_id or not stat:
        return None
    return Receipt(smsc_id, stat)


def _c_string(value: bytes | None) -> str:
    if not value:
        return ""
    return value.split(b"\x00", 1)[0].decode("ascii", "replace")
