"""How `make run` configures and keeps its children, checked without the
whole stack: which environment variables reach the services (devstack.Stack
builds each child's environment, nothing is started), and the restart
back-off, as a formula and with real short-lived processes."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from devstack.stack import DEFAULTS, STACK_OWNED, Ports, Stack, free_port
from devstack.supervisor import Backoff, Child, Supervisor


def _children(stack: Stack) -> list[Child]:
    stack.prepare()
    return [
        stack.database(),
        stack.simulators(),
        *stack.connectors(),
        stack.notifier(),
        stack.aggregator(),
        stack.gateway(),
    ]


def test_the_environments_settings_reach_every_service(tmp_path):
    environ = {
        "PATH": "/usr/bin:/bin",
        "YZTC_GATEWAY_LIMIT_IP_CODES": "7/3600",
        "YZTC_AGGREGATOR_LEASE_SECONDS": "12",
        "YZTC_LOG_LEVEL": "DEBUG",
        "YZTC_NOTIFIER_MAX_PER_SECOND": "9",
        # devstack's own knobs are for devstack.
        "YZTC_DEVSTACK_FREE_PORTS": "1",
        "YZTC_FERRETDB_DEBUG_ADDR": "127.0.0.1:1",
    }
    stack = Stack(tmp_path / "var", Ports.free(), environ=environ, extra_env={"YZTC_NOTIFIER_MAX_PER_SECOND": "11"})
    for child in _children(stack):
        env = child.env
        assert env["PATH"] == "/usr/bin:/bin"
        assert env["YZTC_GATEWAY_LIMIT_IP_CODES"] == "7/3600", child.name
        assert env["YZTC_AGGREGATOR_LEASE_SECONDS"] == "12", child.name
        assert env["YZTC_LOG_LEVEL"] == "DEBUG", child.name
        # What the caller of Stack gives every child comes over the environment.
        assert env["YZTC_NOTIFIER_MAX_PER_SECOND"] == "11", child.name
        assert "YZTC_DEVSTACK_FREE_PORTS" not in env and "YZTC_FERRETDB_DEBUG_ADDR" not in env, child.name
    assert stack.ignored() == []


def test_the_stacks_own_settings_are_not_taken_from_the_environment(tmp_path):
    environ = {name: "from-the-environment" for name in STACK_OWNED}
    stack = Stack(tmp_path / "var", Ports.free(), environ=environ)
    gateway_port = stack.ports.gateway
    for child in _children(stack):
        taken = sorted(k for k, v in child.env.items() if v == "from-the-environment")
        assert taken == [], f"{child.name} took {taken} from the environment"
    assert stack.gateway().env["YZTC_GATEWAY_LISTEN"] == f"127.0.0.1:{gateway_port}"
    assert stack.ignored() == sorted(STACK_OWNED)


def test_stack_owned_is_what_the_stack_sets(tmp_path):
    """STACK_OWNED (and the README's account of it) cannot drift from what
    the children are given: with nothing in the environment, every YZTC_*
    variable a child gets is a default or the stack's own, and every name
    kept back is one the stack sets (YZTC_METRICS_* aside)."""
    stack = Stack(tmp_path / "var", Ports.free(), environ={"PATH": "/usr/bin:/bin"})
    given: set[str] = set()
    for child in _children(stack):
        own = {k for k in child.env if k.startswith("YZTC_")} - DEFAULTS.keys()
        assert own <= STACK_OWNED, f"{child.name}: {sorted(own - STACK_OWNED)} not in STACK_OWNED"
        given |= own
    assert given == STACK_OWNED - {"YZTC_METRICS_PORT", "YZTC_METRICS_HOST"}


def test_backoff_doubles_up_to_the_cap_and_starts_again_after_a_good_run():
    backoff = Backoff(first=1.0, cap=30.0, reset_after=60.0)
    streak, delays = 0, []
    for _ in range(7):
        delay, streak = backoff.next(streak, uptime=2.0)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next(streak, uptime=59.9) == (30, 8)
    assert backoff.next(streak, uptime=60.0) == (1, 1)
    assert backoff.next(10_000, uptime=0.0) == (30, 10_001)


class _Echo:
    """What the supervisor says, for a test to wait on."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def write(self, text: str) -> None:
        with self._changed:
            self.lines += text.splitlines()
            self._changed.notify_all()

    def flush(self) -> None:
        pass

    def wait_for(self, count: int, word: str, timeout: float) -> list[str]:
        with self._changed:
            assert self._changed.wait_for(
                lambda: len([line for line in self.lines if word in line]) >= count, timeout
            ), self.lines
            return [line for line in self.lines if word in line]


@pytest.mark.timeout(60)
def test_a_crashing_child_is_restarted_with_backoff_while_the_others_stay_up(tmp_path):
    echo = _Echo()
    supervisor = Supervisor(tmp_path / "logs", echo=echo)
    steady = Child("steady", [sys.executable, "-c", "import time; time.sleep(120)"], {})
    # Never listens on its port, and exits at once: a crash loop.
    crashing = Child("crashing", [sys.executable, "-c", "raise SystemExit(3)"], {}, ready_port=free_port())
    supervisor.start(steady)
    supervisor.wait_ready([steady])
    supervisor.start(crashing)
    assert steady.process is not None
    first_pid = steady.process.pid
    keeper = threading.Thread(
        target=supervisor.keep_up, args=(Backoff(first=0.1, cap=0.4, reset_after=60.0),), kwargs={"tick": 0.01}
    )
    keeper.start()
    try:
        exits = echo.wait_for(5, "exited", timeout=30)
    finally:
        supervisor.request_stop()
        keeper.join()
        started = time.monotonic()
        supervisor.stop_all(grace=5)
    assert time.monotonic() - started < 5, "the steady child did not stop on SIGTERM"
    assert [line.split("restart ", 1)[1].split(" (")[0] for line in exits[:5]] == [
        "1 in 0.1 s",
        "2 in 0.2 s",
        "3 in 0.4 s",
        "4 in 0.4 s",
        "5 in 0.4 s",
    ]
    assert all("crashing" in line and "(exit code 3)" in line for line in exits), exits
    assert steady.process.pid == first_pid and steady.process.returncode == -15
    assert echo.lines[0].split()[:2] == ["ready", "steady"]
    assert crashing.restarts >= 5
