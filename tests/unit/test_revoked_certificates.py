"""yztc.revoked_certificates and yztc.reloading_file: the internal
revocation list, read again when it changes, the last good one kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from yztc.revoked_certificates import RevokedCertificates, parse_revoked_serials, serial_from_text


def _write(path: Path, document: object) -> None:
    """Atomically, as the kubelet swaps a ConfigMap's files."""
    staged = path.with_suffix(".new")
    staged.write_text(json.dumps(document) if not isinstance(document, str) else document, encoding="utf-8")
    os.replace(staged, path)


def test_serials_are_read_as_openssl_prints_them() -> None:
    assert serial_from_text("4F:1A:09") == serial_from_text("4f1a09") == 0x4F1A09
    with pytest.raises(ValueError):
        serial_from_text("serial=4F")


def test_the_list_applies_as_soon_as_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    _write(path, {"revoked_serials": []})
    revoked = RevokedCertificates(path)
    assert not revoked.revoked(0x4F1A09)
    _write(path, {"revoked_serials": ["4F:1A:09"]})
    assert revoked.revoked(0x4F1A09) and not revoked.revoked(0x4F1A0A)


@pytest.mark.parametrize(
    "broken", ["{not json", {"revoked_serials": "4F"}, {"revoked_serials": ["zz"]}, {"serials": []}]
)
def test_a_broken_edit_keeps_the_last_good_list(tmp_path: Path, broken: object) -> None:
    path = tmp_path / "revoked.json"
    _write(path, {"revoked_serials": ["0A"]})
    revoked = RevokedCertificates(path)
    _write(path, broken)
    assert revoked.revoked(0x0A)
    with pytest.raises((ValueError, KeyError, TypeError)):
        parse_revoked_serials(path)


def test_an_unreadable_list_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        RevokedCertificates(tmp_path / "missing.json")
    assert "YZTC_TLS_REVOKED_SERIALS_FILE" in str(stopped.value)
    assert RevokedCertificates.from_setting("") is None
