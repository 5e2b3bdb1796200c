"""A text as the short_message bodies of its SMS parts: UCS-2 (data_coding 8)
and, beyond one SMS, a concatenated message whose parts carry a User Data
Header with the concatenation element (reference, total, sequence), which
every handset reassembles (3GPP TS 23.040 §9.2.3.24.1)."""

from __future__ import annotations

from dataclasses import dataclass

DATA_CODING_UCS2 = 8
ESM_CLASS_DEFAULT = 0x00
ESM_CLASS_UDHI = 0x40  # "short_message begins with a User Data Header"

# 140 octets of user data: 70 UTF-16 units alone, 67 once the 6-octet UDH
# (05 00 03 ref total seq) takes its share.
SINGLE_UNITS = 70
PART_UNITS = 67


@dataclass(frozen=True)
class Part:
    seq: int  # 1-based
    total: int
    short_message: bytes
    esm_class: int


class TooLong(ValueError):
    pass


def _units(text: str) -> list[bytes]:
    """The text as UTF-16 code units (2 octets each). Characters beyond the
    BMP (emoji) are a surrogate pair; handsets decode data_coding 8 as UTF-16."""
    raw = text.encode("utf-16-be")
    return [raw[i : i + 2] for i in range(0, len(raw), 2)]


def _is_high_surrogate(unit: bytes) -> bool:
    return 0xD8 <= unit[0] <= 0xDB


def split(text: str, ref: int, max_parts: int = 10) -> list[Part]:
    """The parts of `text`; `ref` (0-255) must stay the same on every retry of
    one message so that parts sent in different rounds still join up."""
    if not 0 <= ref <= 255:
        raise ValueError("the concatenation reference is one octet")
    units = _units(text)
    if len(units) <= SINGLE_UNITS:
        return [Part(1, 1, b"".join(units), ESM_CLASS_DEFAULT)]
    chunks: list[list[bytes]] = []
    rest = units
    while rest:
        take = min(PART_UNITS, len(rest))
        # Never split a surrogate pair across two parts: each part must
        # decode on its own on a handset that shows parts as they come.
        if take < len(rest) and _is_high_surrogate(rest[take - 1]):
            take -= 1
        chunks.append(rest[:take])
        rest = rest[take:]
    total = len(chunks)
    if total > max_parts:
        raise TooLong(f"text needs {total} parts, more than {max_parts}")
    return [
        Part(seq, total, bytes([0x05, 0x00, 0x03, ref, total, seq]) + b"".join(chunk), ESM_CLASS_UDHI)
        for seq, chunk in enumerate(chunks, start=1)
    ]
