"""The supervisor's rules on real (tiny) processes: restart with doubling backoff, report
a crash loop instead of hot-looping, kill a child that stops answering, stop everyone
within the grace period."""

from __future__ import annotations

import json
import sys
import time

from calib_cli import supervisor as supervision
from calib_cli.supervisor import Child, Supervisor
from calib_infra.devstack import spawn


def python_child(tmp_path, name: str, code: str, probe=None) -> Child:
    command = [sys.executable, "-c", code]
    return Child(name, launch=lambda: spawn(name, command, tmp_path / "logs"), probe=probe)


def settle(child: Child) -> None:
    child.process.process.wait(10)


def due_now(child: Child) -> None:
    child.restart_at = time.monotonic()


def test_a_crashing_child_is_restarted_with_doubling_backoff_then_reported(tmp_path):
    said: list[str] = []
    crasher = python_child(tmp_path, "crasher", "raise SystemExit(3)")
    calm = python_child(tmp_path, "calm", "import time; time.sleep(60)")
    supervisor = Supervisor([], tmp_path / "state.json", said.append)
    supervisor.add(crasher)
    supervisor.add(calm)
    calm_pid = calm.process.process.pid
    backoffs = []
    for _ in range(supervision.CRASH_LOOP_RESTARTS + 1):
        settle(crasher)
        supervisor.check()  # notes the exit, schedules the restart
        backoffs.append(round(crasher.restart_at - time.monotonic()))
        due_now(crasher)
        supervisor.check()  # restarts it
    assert backoffs == [1, 2, 4, 8, 16, 32]
    settle(crasher)
    supervisor.check()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["crasher"]["restarts"] == 7 and state["crasher"]["last_exit"] == 3
    assert state["crasher"]["state"] == "crash-looping" and state["crasher"]["pid"] is None
    assert round(crasher.restart_at - time.monotonic()) == 60  # capped at a minute
    assert state["calm"] == {**state["calm"], "state": "running", "restarts": 0, "pid": calm_pid}
    assert any("crasher exited (code 3) (crash-looping)" in line for line in said)
    supervisor.stop_all()


def test_a_child_that_stops_answering_is_killed_and_restarted(tmp_path):
    answers = iter([True, False, False, False])
    frozen = python_child(tmp_path, "frozen", "import time; time.sleep(60)", lambda: next(answers))
    supervisor = Supervisor([], tmp_path / "state.json", lambda line: None)
    supervisor.add(frozen)
    first = frozen.process
    for _ in range(4):
        frozen.next_probe_at = 0
        supervisor.check()
    assert first.process.poll() is not None  # killed on the third unanswered probe in a row
    assert frozen.last_exit == supervision.UNRESPONSIVE and frozen.restarts == 1
    due_now(frozen)
    supervisor.check()
    assert frozen.process is not first and frozen.process.process.poll() is None
    supervisor.stop_all()


def test_stop_reaches_every_child_within_the_grace_period(tmp_path):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    children = [python_child(tmp_path, f"c{i}", stubborn) for i in range(4)]
    supervisor = Supervisor([], tmp_path / "state.json", lambda line: None)
    for child in children:
        supervisor.add(child)
    time.sleep(0.5)  # let them install their handlers
    started = time.monotonic()
    supervisor.stop_all(grace_s=1.0)
    assert time.monotonic() - started < 3.0  # one grace period for all, not one each
    assert all(child.process.process.poll() is not None for child in children)
