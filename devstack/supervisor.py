"""A small process supervisor: start children in order, wait until each is
ready, relay their output, and stop them all (process groups, by PID).

Why not honcho/foreman: the stack needs ordering with readiness (the database
before the services that read it, connectors before the aggregator) and
tests need to start the very same stack on free ports and stop it by PID;
a Procfile runner does neither.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_port: int | None = None
    listens: str = ""
    process: subprocess.Popen | None = field(default=None, repr=False)
    relay: threading.Thread | None = field(default=None, repr=False)


class StartError(RuntimeError):
    pass


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class Supervisor:
    def __init__(self, log_dir: Path, echo: TextIO | None = None) -> None:
        self.children: list[Child] = []
        self._log_dir = log_dir
        self._echo = echo
        self._lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, child: Child) -> None:
        log = open(self._log_dir / f"{child.name}.log", "ab")
        child.process = subprocess.Popen(
            child.argv,
            env=child.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group, so a stop reaches whatever it spawned,
            # and a terminal's Ctrl-C reaches only us (we stop it in order).
            start_new_session=True,
        )
        self.children.append(child)
        child.relay = threading.Thread(
            target=self._relay, args=(child, log), name=f"relay-{child.name}", daemon=True
        )
        child.relay.start()

    def _relay(self, child: Child, log) -> None:
        assert child.process and child.process.stdout
        with log:
            for line in child.process.stdout:
                log.write(line)
                log.flush()
                if self._echo is not None:
                    with self._lock:
                        self._echo.write(f"{child.name:>18} | {line.decode(errors='replace')}")
                        self._echo.flush()

    def wait_ready(self, children: list[Child], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = [c for c in children if c.ready_port]
        while pending:
            for child in list(pending):
                assert child.process
                if child.process.poll() is not None:
                    raise StartError(
                        f"{child.name} exited with {child.process.returncode}; "
                        f"see {self._log_dir / (child.name + '.log')}"
                    )
                if port_open(child.ready_port):
                    pending.remove(child)
            if time.monotonic() > deadline:
                raise StartError("not ready in time: " + ", ".join(c.name for c in pending))
            time.sleep(0.1)

    def _child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL the child's whole group, like a crash, and reap it."""
        child = self._child(name)
        assert child.process
        self._signal(child, signal.SIGKILL)
        child.process.wait()

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped or killed child again with the same command."""
        child = self._child(name)
        assert child.process and child.process.poll() is not None
        if child.relay is not None:
            child.relay.join(timeout=2)
        if child.process.stdout:
            child.process.stdout.close()
        self.children.remove(child)
        fresh = Child(child.name, child.argv, child.env, child.ready_port, child.listens)
        self.start(fresh)
        self.wait_ready([fresh], timeout)

    def failed(self) -> Child | None:
        for child in self.children:
            if child.process and child.process.poll() is not None:
                return child
        return None

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every child's group, newest first; SIGKILL what outlives the grace."""
        for child in reversed(self.children):
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            assert child.process
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(child, signal.SIGKILL)
                child.process.wait()
        for child in self.children:
            assert child.process and child.process.stdout
            if child.relay is not None:
                child.relay.join(timeout=2)
            child.process.stdout.close()
        self.children.clear()

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        assert child.process
        try:
            os.killpg(child.process.pid, sig)
        except ProcessLookupError:
            pass


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
