"""The channel API's rules on who asks and what a request may name, as pure
functions (no I/O): the `requester_id` every call carries (CONTRACT, gRPC
API: "`requester_id` is required on every call; a channel reads only its
own requesters' queries"), the `query_id` a GetQuery names, and the keyed
tag stored in place of the requester id: with a verification code (only
its requester may present it), in a query record (only its requester reads
it) and in per-requester quota slots (security review M6, M7, L3, L6).

Field limits, in characters (proto3 strings are UTF-8; every limit here is
of ASCII, so characters and bytes are the same):

- requester_id: 1 to REQUESTER_ID_MAX_LENGTH visible ASCII characters
  (U+0021..U+007E: digits, letters, punctuation; no space, no control).
  A channel's opaque id of a person (an Alipay user id of 16 digits, an
  `open:`-prefixed Alipay open id, a WeChat openid of 28, a UUID of 36)
  fits with room to spare. Anything else: INVALID_ARGUMENT.
- query_id: the form our ids have (uuid4 hex), as the gateway reads them
  from a URL (gateway/request_bodies.py): 1 to QUERY_ID_MAX_LENGTH of
  `[A-Za-z0-9_-]`. An id of another form cannot name a query and is
  answered as an unknown one (NOT_FOUND), without a look-up.
- phone, id_last6, code: yztc/identifiers.py (at most 32, 6 and 6
  characters), checked before anything else is read.

Error details never echo the input: it may be a person's identifier.
"""

from __future__ import annotations

import hmac
import re
from typing import Final

from yztc.errors import ServiceError
from yztc.keyed_hashes import KeyedHasher

REQUESTER_ID_MAX_LENGTH: Final = 128
QUERY_ID_MAX_LENGTH: Final = 64

_REQUESTER_ID = re.compile(rf"[\x21-\x7e]{{1,{REQUESTER_ID_MAX_LENGTH}}}")
_QUERY_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{QUERY_ID_MAX_LENGTH}}}")

# The purpose of the requester tag's keyed hash (yztc.keyed_hashes).
REQUESTER: Final = "requester"

REQUESTER_ID_REFUSED: Final = f"requester_id 为必填项：1至{REQUESTER_ID_MAX_LENGTH}个可见 ASCII 字符。"


def requester_id(raw: object) -> str:
    """The requester id as given, if it is one; else ServiceError
    INVALID_ARGUMENT (empty, longer than REQUESTER_ID_MAX_LENGTH, or with a
    character outside U+0021..U+007E). The length is looked at before the
    characters, so a string of any size costs one len()."""
    if not isinstance(raw, str) or not 0 < len(raw) <= REQUESTER_ID_MAX_LENGTH or not _REQUESTER_ID.fullmatch(raw):
        raise ServiceError("INVALID_ARGUMENT", detail=REQUESTER_ID_REFUSED)
    return raw


def names_a_query(raw: object) -> bool:
    """Whether `raw` has the form of a query id (else it names none: NOT_FOUND)."""
    return isinstance(raw, str) and len(raw) <= QUERY_ID_MAX_LENGTH and _QUERY_ID.fullmatch(raw) is not None


def requester_tag(hasher: KeyedHasher, channel: str, requester: str, stored: str = "") -> str:
    """Who asked, as stored in place of the requester id (with a code, in a
    query record, in a per-requester quota slot): the keyed hash
    (yztc.keyed_hashes, "<key id>.<32 hex>") of the channel and requester id.
    Keyed, so the stored tag names no one to a reader of the database; the
    channel is in it, so two channels' requesters of the same id differ.
    With `stored` (a tag read back), under the key that one was made with,
    to compare with it (request_rules.may_see); else under the current key."""
    return hasher.digest_under(stored, REQUESTER, _tagged(channel, requester))


def requester_tags(hasher: KeyedHasher, channel: str, requester: str) -> list[str]:
    """`requester_tag` under every configured key, the current one first."""
    return hasher.all_digests(REQUESTER, _tagged(channel, requester))


def _tagged(channel: str, requester: str) -> str:
    # Length-prefixed, so no (channel, requester) pair reads as another.
    return f"{len(channel)}:{channel}{requester}"


def may_see(query_channel: str, query_requester: str, channel: str, requester: str) -> bool:
    """Whether the caller (channel; `requester`, its requester_tag under the
    key of the query's) is the one a query was made for: both equal, and the
    query still names a requester (a purged query, retention.py, names none
    and is seen by nobody)."""
    return (
        bool(query_requester)
        and query_channel == channel
        and hmac.compare_digest(query_requester.encode(), requester.encode())
    )
