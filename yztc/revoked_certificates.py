"""Internal certificates revoked one by one (issue 13's M2 for our own
services): a leaked certificate of the internal CA is refused by serial
without rotating the CA.

The list is a JSON file, `{"revoked_serials": ["4F:1A:…", …]}` (serials in
hex, as `openssl x509 -noout -serial` prints them, colons and case free),
named by YZTC_TLS_REVOKED_SERIALS_FILE and read again when it changes
(yztc.reloading_file): in Kubernetes the ConfigMap
`yztc-internal-revocations`, so a revocation applies within the kubelet's
sync period, without a restart (docs/runbook.md, "Revoke an internal
certificate"). The servers that admit internal callers check it
(yztc.tls.require_caller: connectors and the notifier, whose caller is the
aggregator); the aggregator's internal port checks the channels file's
`revoked_serials`, which names the gateway's certificate."""

from __future__ import annotations

import json
from pathlib import Path

from yztc.reloading_file import PARSE_ERRORS, ReloadingFile


def serial_from_text(text: object) -> int:
    """A certificate serial from its hex text ("4F:1A:09", "4f1a09");
    ValueError if it is not hex."""
    return int(str(text).replace(":", "").strip(), 16)


def parse_revoked_serials(path: Path) -> frozenset[int]:
    """The serials of `{"revoked_serials": [...]}` in `path`. OSError,
    ValueError (not JSON, not hex), KeyError or TypeError (not that shape)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    serials = document["revoked_serials"]
    if not isinstance(serials, list):
        raise TypeError("revoked_serials must be a list")
    return frozenset(serial_from_text(s) for s in serials)


class RevokedCertificates:
    """The revocation list of one file, as it is now."""

    def __init__(self, path: Path) -> None:
        """SystemExit (fail closed) if the file cannot be read at start."""
        try:
            self._file = ReloadingFile(path, parse_revoked_serials, "internal revocation list")
        except PARSE_ERRORS as error:
            raise SystemExit(f"cannot read YZTC_TLS_REVOKED_SERIALS_FILE {path}: {error}") from None

    @classmethod
    def from_setting(cls, path: str) -> RevokedCertificates | None:
        """None when the setting is empty: nothing revoked."""
        return cls(Path(path)) if path else None

    def revoked(self, serial: int) -> bool:
        return serial in self._file.current()
