"""What an SMS centre's answer to a submit_sm means for the message: accepted,
worth trying again later (transient), or never going to work (permanent).
Command status values from SMPP 3.4 §5.1.3."""

from __future__ import annotations

import enum

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RINVMSGID = 0x0C
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RINVESMCLASS = 0x43
ESME_RSUBMITFAIL = 0x45
ESME_RINVSRCTON = 0x48
ESME_RINVSRCNPI = 0x49
ESME_RINVDSTTON = 0x50
ESME_RINVDSTNPI = 0x51
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
ESME_RX_R_APPN = 0x66
ESME_RINVOPTPARSTREAM = 0xC0
ESME_RUNKNOWNERR = 0xFF

NAMES = {value: name for name, value in globals().items() if name.startswith("ESME_")}


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


# The centre is busy, overloaded or briefly broken, or our session is in a
# bad state (a reconnect mends it): the same PDU may well pass later.
# Anything not named here is about the message itself (bad address, bad
# length, refused content) and will fail again however often it is sent.
TRANSIENT = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RSYSERR, ESME_RSUBMITFAIL, ESME_RX_T_APPN, ESME_RINVBNDSTS})


def verdict(command_status: int) -> Verdict:
    if command_status == ESME_ROK:
        return Verdict.ACCEPTED
    if command_status in TRANSIENT:
        return Verdict.TRANSIENT
    return Verdict.PERMANENT


def name(command_status: int) -> str:
    return NAMES.get(command_status, f"0x{command_status:08X}")
