"""A configuration file read again when it changes, for settings that apply
without a restart: the channels file (aggregator/channel_quotas.py) and the
internal certificates' revocation list (yztc/revoked_certificates.py), both
ConfigMaps mounted as directories, so the kubelet swaps them in place.

One stat per `current()` (the file's mtime, size and inode) decides whether
to parse it again. A version that does not parse keeps the previous value
(logged, with the error's type and message, never the file's contents);
replace the file atomically (write, then rename), as the kubelet does."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a parser may raise for a file that is missing, unreadable or malformed
# (AttributeError: a JSON value of the wrong shape, a list where an object
# belongs, met by `.get` or `.items()`).
PARSE_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError)


class ReloadingFile(Generic[T]):
    """`parse(path)`'s value, parsed again when the file changes. The first
    parse happens here and raises what `parse` raises (the caller decides
    how to refuse to start); `what` names the file in log lines."""

    def __init__(self, path: Path, parse: Callable[[Path], T], what: str) -> None:
        self._path = path
        self._parse = parse
        self._what = what
        self._stamp = self._stat()
        self._value = parse(path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> T:
        """The latest version that parsed."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._value = self._parse(self._path)
                log.info(f"{self._what} reloaded")
            except PARSE_ERRORS as error:
                log.error(
                    f"{self._what} not reloaded; the previous one stays",
                    extra={"fields": {"error": f"{type(error).__name__}: {error}"}},
                )
        return self._value
