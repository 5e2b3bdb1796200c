"""The H5 page's pure rules (gateway/h5/form-errors.js: where each CONTRACT
error is shown, how a wait is told, the identifier forms), tested under
node's own test runner (tests/browser/form-errors.test.mjs): no browser, no
stack, no package beyond Node.js itself."""

from __future__ import annotations

import subprocess

from devstack.stack import ROOT


def test_form_rules_of_the_h5_page() -> None:
    run = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "form-errors.test.mjs"],
        cwd=ROOT / "tests" / "browser",
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "ℹ pass 4" in report and "ℹ fail 0" in report, report
