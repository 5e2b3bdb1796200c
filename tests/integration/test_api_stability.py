"""The channel API stays stable: buf lint passes, nothing breaks against the
released image (protos/released/yztc-v1.binpb), and a breaking change in a
scratch copy is caught."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "bin" / "buf"
IMAGE = ROOT / "protos" / "released" / "yztc-v1.binpb"


@pytest.fixture(scope="module")
def buf() -> Path:
    if not BUF.exists():
        subprocess.run(["make", "buf"], cwd=ROOT, check=True)
    return BUF


def _run(buf: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(buf), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_lint_and_no_breaking_change(buf):
    lint = _run(buf, "lint", cwd=ROOT / "protos")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    breaking = _run(buf, "breaking", "--against", str(IMAGE), cwd=ROOT / "protos")
    assert breaking.returncode == 0, breaking.stdout + breaking.stderr


def test_a_breaking_change_is_caught(buf, tmp_path):
    scratch = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", scratch, ignore=shutil.ignore_patterns("released"))
    proto = scratch / "yztc" / "v1" / "account_query.proto"
    text = proto.read_text(encoding="utf-8")
    changed = text.replace(
        "  string query_id = 1;\n  QueryStatus status = 2;", "  int64 query_id = 1;\n  QueryStatus status = 2;"
    )
    assert changed != text
    proto.write_text(changed, encoding="utf-8")
    breaking = _run(buf, "breaking", "--against", str(IMAGE), cwd=scratch)
    assert breaking.returncode != 0
    assert "query_id" in breaking.stdout + breaking.stderr
