"""The H5 page in a real browser (issue 15): a stack started the `make run`
way (devstack.Stack, the shipped scenario, free ports), then
tests/browser/h5.test.mjs under node's test runner, which drives Debian's
Chromium with playwright-core and checks it with axe-core (all installed by
`make install`: mk/h5.mk). Each browser test's outcome is in the output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import ROOT, Ports, Stack

BROWSER_TESTS = ROOT / "tests" / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCENARIO = ROOT / "simulators" / "default_scenario.json"


@pytest.fixture(scope="module")
def h5_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A stack of its own: the flows use the demo phones, whose 24-hour limits
    # the other e2e tests' stack must not see.
    stack = Stack(tmp_path_factory.mktemp("h5-stack"), Ports.free(), scenario=str(SCENARIO))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.timeout(600)
def test_h5_page_in_chromium(h5_stack: Stack, tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make install` installs it (mk/h5.mk)"
    assert (BROWSER_TESTS / "node_modules" / "playwright-core").is_dir(), "run `make install` (mk/h5.mk)"
    shots = Path(os.environ.get("YZTC_H5_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    secrets = tmp_path / "secrets.txt"
    env = {
        **os.environ,
        "YZTC_H5_GATEWAY": f"http://127.0.0.1:{h5_stack.ports.gateway}",
        "YZTC_H5_SMSC": f"http://127.0.0.1:{h5_stack.ports.sim_smsc}",
        "YZTC_H5_SCREENSHOTS": str(shots),
        "YZTC_H5_SECRETS": str(secrets),
        "CHROMIUM": str(CHROMIUM),
    }
    run = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "--test-concurrency=1", "h5.test.mjs"],
        cwd=BROWSER_TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    report = run.stdout + run.stderr
    print(report)
    assert run.returncode == 0, report[-6000:]
    assert "ℹ fail 0" in report and "ℹ skipped 0" in report
    for name in ("query.png", "progress.png", "care-query.png"):
        assert (shots / name).stat().st_size > 5000, f"no {name}"
    # No auth code, login state or session token the browser saw is in any
    # service's log (the simulators' included).
    seen = set(secrets.read_text(encoding="utf-8").split())
    assert len(seen) >= 10
    logs = {
        path.name: path.read_text(encoding="utf-8", errors="replace") for path in (h5_stack.var / "logs").glob("*.log")
    }
    assert "gateway.log" in logs and "simulators.log" in logs
    for name, text in logs.items():
        leaked = sorted(value for value in seen if value in text)
        assert not leaked, f"{len(leaked)} auth codes, states or tokens in {name}"
