"""`make run`: the whole stack on the CONTRACT's defaults, until Ctrl-C."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from devstack.stack import ROOT, Ports, Stack
from devstack.supervisor import StartError


def main() -> int:
    # YZTC_DEVSTACK_VAR / YZTC_DEVSTACK_FREE_PORTS let a test run this very
    # command beside another stack; `make run` uses var/ and the CONTRACT ports.
    var = Path(os.environ.get("YZTC_DEVSTACK_VAR", ROOT / "var"))
    ports = Ports.free() if os.environ.get("YZTC_DEVSTACK_FREE_PORTS") == "1" else Ports()
    stack = Stack(var, ports, echo=sys.stdout)
    stopping = False

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("starting the yztc stack (logs also in var/logs/) ...", flush=True)
    try:
        stack.start()
    except StartError as error:
        print(f"start failed: {error}", file=sys.stderr)
        return 1
    print("\nyztc is running:\n" + stack.describe(), flush=True)
    print(
        f"\n  development PKI      {stack.pki_dir}/ca.pem, wechat-demo.pem, wechat-demo-key.pem"
        "\n  Ctrl-C stops everything.\n",
        flush=True,
    )
    while not stopping:
        failed = stack.supervisor.failed()
        if failed is not None:
            print(f"{failed.name} exited; stopping the stack", file=sys.stderr)
            stack.stop()
            return 1
        time.sleep(0.3)
    print("\nstopping ...", flush=True)
    stack.stop()
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
