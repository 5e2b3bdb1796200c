"""`make run`: the whole stack on the CONTRACT's defaults, until Ctrl-C.

Quiet: a line per service when it is ready, the table of addresses, then a
line whenever a service exits and is restarted (as Kubernetes would, with
back-off; the others stay up). Everything the services write is in
var/logs/<service>.log.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from devstack.stack import ROOT, Ports, Stack
from devstack.supervisor import Backoff, Interrupted, StartError


def main() -> int:
    # YZTC_DEVSTACK_VAR / YZTC_DEVSTACK_FREE_PORTS let a test run this very
    # command beside another stack; `make run` uses var/ and the CONTRACT ports.
    var = Path(os.environ.get("YZTC_DEVSTACK_VAR", ROOT / "var"))
    ports = Ports.free() if os.environ.get("YZTC_DEVSTACK_FREE_PORTS") == "1" else Ports()
    stack = Stack(var, ports, echo=sys.stdout)

    def on_signal(signum, frame):  # noqa: ARG001
        stack.supervisor.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"starting the yztc stack (each service's log: {stack.supervisor.log_dir}/<service>.log) ...", flush=True)
    if ignored := stack.ignored():
        print("  not passed on, the stack sets these itself: " + " ".join(ignored), flush=True)
    try:
        stack.start()
    except Interrupted:
        print("stopped.", flush=True)
        return 0
    except StartError as error:
        print(f"start failed: {error}", file=sys.stderr, flush=True)
        return 1
    print("\nyztc is running:\n" + stack.describe(), flush=True)
    print(
        f"\n  development PKI      {stack.pki_dir}/: internal CA ca.pem (verifies every server),"
        f" channels' CA {stack.channels_ca.name};"
        "\n                       channel wechat-demo: wechat-demo.pem, wechat-demo-key.pem"
        "\n  Ctrl-C stops everything.\n",
        flush=True,
    )
    stack.supervisor.keep_up(Backoff())
    print("\nstopping ...", flush=True)
    stack.stop()
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
