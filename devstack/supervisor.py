"""A small process supervisor: start children in waves, wait until each
listens, keep them up the way Kubernetes keeps a pod's containers up (a
child that exits is started again after an exponential back-off, the
others stay up), and stop them all, newest wave first (process groups, by
PID).

Each child's output goes straight to `<log_dir>/<name>.log`, appended
across restarts; what the supervisor itself has to say (a child is ready,
a child exited and will be restarted) is one line each to `echo`.

Why not honcho/foreman: the stack needs ordering with readiness (the
database before the services that read it, connectors before the
aggregator) and tests need to start the very same stack on free ports and
stop it by PID; a Procfile runner does neither. supervisord would, but as a
daemon driven by generated config files. The back-off is one formula
(`Backoff.next`), not worth a dependency.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Child:
    """One process of the stack, and what the supervisor keeps about it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    # Ready once something accepts TCP connections on 127.0.0.1:ready_port.
    ready_port: int | None = None
    listens: str = ""
    process: subprocess.Popen | None = field(default=None, repr=False)
    # Kept by the supervisor. Times are time.monotonic() seconds.
    wave: int = field(default=0, repr=False)
    started_at: float = field(default=0.0, repr=False)
    ready: bool = field(default=False, repr=False)
    restarts: int = field(default=0, repr=False)  # since the supervisor started it
    streak: int = field(default=0, repr=False)  # restarts in a row without staying up
    restart_at: float | None = field(default=None, repr=False)  # set while it waits to restart


class StartError(RuntimeError):
    """A child exited, or was not ready in time, while the stack started."""


class Interrupted(RuntimeError):
    """Stopping was asked for (request_stop) while the stack started."""


@dataclass(frozen=True)
class Backoff:
    """How long a child that exited waits before it is started again, as
    Kubernetes' CrashLoopBackOff does it: `first` seconds, doubled with
    each restart in a row, at most `cap` seconds; a child that had been up
    for `reset_after` seconds when it exited starts from `first` again.
    (Kubernetes: 10 s, 300 s, 10 minutes; a development stack can be quicker.)"""

    first: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def next(self, streak: int, uptime: float) -> tuple[float, int]:
        """(seconds to wait, the new streak) for a child that exited after
        `uptime` seconds up, having been restarted `streak` times in a row."""
        if uptime >= self.reset_after:
            streak = 0
        # The exponent is bounded so that a long crash loop cannot overflow a float.
        return min(self.cap, self.first * 2.0 ** min(streak, 60)), streak + 1


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def exit_reason(returncode: int) -> str:
    """ "exit code 1", or "killed by SIGKILL" for a Popen returncode of -9."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _shown(path: Path) -> str:
    """The path as a person would type it from here."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Supervisor:
    """Starts, watches and stops the children of one stack.

    A wave is the children started between two `wait_ready` calls; the
    stack starts its waves in dependency order, and `stop_all` stops them
    in the reverse order, so that no child outlives those that call it."""

    def __init__(self, log_dir: Path, echo: TextIO | None = None) -> None:
        self.children: list[Child] = []
        self.log_dir = log_dir
        self._echo = echo
        self._wave = 0
        self._stop_requested = False
        log_dir.mkdir(parents=True, exist_ok=True)

    # -- starting -------------------------------------------------------------

    def log_path(self, child: Child) -> Path:
        return self.log_dir / f"{child.name}.log"

    def start(self, child: Child) -> None:
        """Starts the child in the current wave (ready or not: see wait_ready)."""
        child.wave = self._wave
        self._spawn(child)
        self.children.append(child)

    def _spawn(self, child: Child) -> None:
        with open(self.log_path(child), "ab") as log:
            child.process = subprocess.Popen(
                child.argv,
                env=child.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so a stop reaches whatever it spawned,
                # and a terminal's Ctrl-C reaches only us (we stop it in order).
                start_new_session=True,
            )
        child.started_at = time.monotonic()
        child.ready = False
        child.restart_at = None

    def wait_ready(self, children: Iterable[Child], timeout: float = 60.0) -> None:
        """Returns once every child is ready (one line each to `echo`), and
        closes the current wave. StartError if one exits first or `timeout`
        seconds pass; Interrupted if request_stop() is called meanwhile."""
        self._wave += 1
        deadline = time.monotonic() + timeout
        pending = [c for c in children if not c.ready]
        while pending:
            if self._stop_requested:
                raise Interrupted("stopped while starting")
            for child in list(pending):
                assert child.process
                returncode = child.process.poll()
                if returncode is not None:
                    raise StartError(
                        f"{child.name} ended ({exit_reason(returncode)}) before it was ready; "
                        f"its log, {_shown(self.log_path(child))}, ends with:\n{self._tail(child)}"
                    )
                if self._check_ready(child):
                    pending.remove(child)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise StartError("not ready in time: " + ", ".join(c.name for c in pending))
            time.sleep(0.1)

    def _check_ready(self, child: Child) -> bool:
        """Whether the child is ready; says so the first time it is found ready."""
        if not child.ready and (child.ready_port is None or port_open(child.ready_port)):
            child.ready = True
            took = time.monotonic() - child.started_at
            again = f" (restart {child.restarts})" if child.restarts else ""
            self.say(f"  ready    {child.name:<18} in {took:.1f} s{again}")
        return child.ready

    def _tail(self, child: Child, lines: int = 5, width: int = 300) -> str:
        try:
            text = self.log_path(child).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "  (no log)"
        return "\n".join("  " + line[:width] for line in text.splitlines()[-lines:]) or "  (empty)"

    def say(self, line: str) -> None:
        if self._echo is not None:
            self._echo.write(line + "\n")
            self._echo.flush()

    # -- keeping up -----------------------------------------------------------

    def request_stop(self) -> None:
        """Ends keep_up() and interrupts wait_ready(); safe in a signal handler
        (it only sets a flag, which they look at every tick)."""
        self._stop_requested = True

    def keep_up(self, backoff: Backoff = Backoff(), tick: float = 0.2) -> None:
        """Until request_stop(): every child that exits is started again
        after the back-off, the others left as they are; one line to `echo`
        when it exits, and the usual ready line when it listens again."""
        while not self._stop_requested:
            self.tend(backoff)
            time.sleep(tick)

    def tend(self, backoff: Backoff) -> None:
        """One look at every child (what keep_up does each tick)."""
        now = time.monotonic()
        for child in self.children:
            assert child.process
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                continue
            returncode = child.process.poll()
            if returncode is None:
                self._check_ready(child)
                continue
            uptime = now - child.started_at
            delay, child.streak = backoff.next(child.streak, uptime)
            child.restarts += 1
            child.restart_at = now + delay
            self.say(
                f"  exited   {child.name:<18} ({exit_reason(returncode)}) after {uptime:.0f} s; "
                f"restart {child.restarts} in {delay:g} s (log: {_shown(self.log_path(child))})"
            )

    # -- tests' hooks ---------------------------------------------------------

    def _child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL the child's whole group, like a crash, and reap it."""
        child = self._child(name)
        assert child.process
        self._signal(child, signal.SIGKILL)
        child.process.wait()

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped or killed child again with the same command (in
        its place and wave) and wait until it is ready."""
        child = self._child(name)
        assert child.process and child.process.poll() is not None
        self._spawn(child)
        self.wait_ready([child], timeout)

    # -- stopping -------------------------------------------------------------

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM wave by wave, newest first; in each wave, SIGKILL what
        outlives `grace` seconds."""
        for wave in sorted({c.wave for c in self.children}, reverse=True):
            group = [c for c in self.children if c.wave == wave]
            for child in group:
                self._signal(child, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for child in group:
                assert child.process
                try:
                    child.process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._signal(child, signal.SIGKILL)
                    child.process.wait()
        self.children.clear()

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        assert child.process
        # Only a live child: a reaped one's PID may already be another's.
        if child.process.poll() is not None:
            return
        try:
            os.killpg(child.process.pid, sig)
        except ProcessLookupError:
            pass


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
