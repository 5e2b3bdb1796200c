"""Strict RFC 8259 decoding of request bodies: what json.loads lets through
is refused here.

The standard library's parser made strict by its own hooks (no JSON
library we could add refuses duplicate keys): the body must be UTF-8
(RFC 8259 §8.1; json.loads would also guess UTF-16 and UTF-32 from bytes),
without a byte-order mark, with no member name twice in an object
(json.loads keeps the last: `{"consent":false,"consent":true}` would read
as consent), no NaN, Infinity or numbers beyond a double (1e999 would read
as inf), no lone UTF-16 surrogates from `\\u` escapes (RFC 8259 §8.2: not
text), and nothing after the value but whitespace.
"""

from __future__ import annotations

import json
import math
import re
from typing import NoReturn

# A surrogate code point can only come from a `\uD800`-style escape: strict
# UTF-8 decoding refuses encoded ones, and a correct pair is joined by the parser.
_SURROGATE = re.compile("[\ud800-\udfff]")


class NotStrictJson(ValueError):
    """The body is not strict JSON; the text says which rule, never the input."""


def loads(raw: bytes) -> object:
    """The value of a strict JSON text in UTF-8; NotStrictJson otherwise.

    Numbers come back as int or float (finite), objects as dict, arrays as list.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotStrictJson("not UTF-8") from None
    try:
        value = _DECODER.decode(text)
    # RecursionError: a 16 KiB body of "[[[[..." nests past the parser's limit;
    # ValueError also covers ints of more digits than Python converts.
    except (ValueError, RecursionError) as error:
        if isinstance(error, NotStrictJson):
            raise
        raise NotStrictJson("not JSON") from None
    _refuse_surrogates(value)
    return value


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise NotStrictJson("a member name appears twice")
    return found


def _constant(name: str) -> NoReturn:
    raise NotStrictJson("NaN and Infinity are not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotStrictJson("a number beyond a double")
    return value


def _refuse_surrogates(value: object) -> None:
    # Iterative: nesting is bounded by the parser, but needs no second stack here.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise NotStrictJson("a lone surrogate")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


# strict=True (the default) already refuses control characters in strings;
# decode() refuses anything but whitespace after the value, and a leading BOM.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant, parse_float=_float)
