"""Every service's event loop: uvloop (libuv), +8-22 % throughput on gRPC
echo and +9-15 % on the fan-out against asyncio's own loop
(../shared/notes/throughput-design.md §2.3, item 7)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs `main` to completion on a new uvloop event loop and returns its
    result, as `asyncio.run` does (the loop is closed afterwards)."""
    return uvloop.run(main)
