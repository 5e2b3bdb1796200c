"""Ctrl-C under `make run` with an ESME still bound: the simulators process
stops on SIGTERM (what devstack sends it) with status 0 and no traceback,
whichever of it and the notifier stops first. Deterministic here, where
the whole-stack test (test_make_run.py) meets the case only by chance."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

from devstack import secrets
from devstack.stack import ROOT

BIND_TRANSCEIVER, BIND_TRANSCEIVER_RESP = 0x09, 0x80000009


def _bind_transceiver(system_id: str, password: str) -> bytes:
    body = (
        system_id.encode()
        + b"\0"
        + password.encode()
        + b"\0"
        + b"\0"  # system_type
        + bytes([0x34, 0, 0])
        + b"\0"  # interface_version 3.4, addr_ton, addr_npi, address_range
    )
    return struct.pack(">IIII", 16 + len(body), BIND_TRANSCEIVER, 0, 1) + body


def test_simulators_stop_without_a_traceback_while_an_esme_is_bound(tmp_path: Path) -> None:
    secrets.rsa_pair(tmp_path, "sim")
    secrets.rsa_pair(tmp_path, "app")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_")}
    env.update(
        PYTHONUNBUFFERED="1",
        YZTC_SIM_COMPANIES_LISTEN="127.0.0.1:0",
        YZTC_SIM_OPERATORS_LISTEN="127.0.0.1:0",
        YZTC_SIM_ALIPAY_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMSC_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMPP_LISTEN="127.0.0.1:0",
        YZTC_SIM_CMPP_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMPP_SYSTEM_ID="yztc",
        YZTC_SIM_SMPP_PASSWORD="devpass",
        YZTC_SIM_ALIPAY_PRIVATE_KEY_FILE=str(tmp_path / "sim-private.pem"),
        YZTC_SIM_ALIPAY_APP_PUBLIC_KEY_FILE=str(tmp_path / "app-public.pem"),
    )
    with subprocess.Popen(
        [sys.executable, "-m", "simulators"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            # The start-up lines (a warning may come first: no partner keys given).
            lines = [proc.stdout.readline() for _ in range(6)]
            smpp = next((line for line in lines if "sms_centre_smpp listening on" in line), "")
            assert "sms_centre_smpp listening on smpp://127.0.0.1:" in smpp, lines
            port = int(smpp.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as esme:
                esme.sendall(_bind_transceiver("yztc", "devpass"))
                length, command, status, _ = struct.unpack(">IIII", esme.recv(16, socket.MSG_WAITALL))
                assert (command, status) == (BIND_TRANSCEIVER_RESP, 0)
                esme.recv(length - 16, socket.MSG_WAITALL)
                proc.send_signal(signal.SIGTERM)  # the session still open
                assert proc.wait(15) == 0
            rest = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in rest and "CancelledError" not in rest, rest
