"""The supervisor behind ``calib run``: every embedded server and service is a child
process; one that exits, or that stops answering its liveness probe, is restarted with
exponential backoff while the others keep running.

Restarts are logged and written, with each child's last exit code and start time, to a
state file the gateway's ``/health`` report shows. A child that keeps crashing is
reported as ``crash-looping`` and retried ever more slowly (up to a minute apart), never
hot-looped. Stopping sends SIGTERM to every child at once and SIGKILL to those still
there after the grace period.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from calib_infra.devstack import ManagedProcess, stop_all

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
#: A child that ran this long before it exited starts again from the first backoff.
STABLE_AFTER_S = 60.0
#: More restarts than this within the window: reported as crash-looping.
CRASH_LOOP_RESTARTS = 5
CRASH_LOOP_WINDOW_S = 300.0
PROBE_INTERVAL_S = 3.0
#: Probes are not judged this soon after a start (servers take a moment to come up).
PROBE_GRACE_S = 15.0
#: Consecutive unanswered probes before a live but unresponsive child is killed.
PROBE_FAILURES_TO_RESTART = 3
#: Exit code recorded for a child killed because it stopped answering.
UNRESPONSIVE = "unresponsive"


@dataclass
class Child:
    """One supervised process: how to start it and, optionally, how to ask if it answers."""

    name: str
    launch: Callable[[], ManagedProcess]
    probe: Callable[[], bool] | None = None
    process: ManagedProcess | None = None
    restarts: int = 0
    last_exit: int | str | None = None
    up_since: datetime | None = None
    started_monotonic: float = 0.0
    restart_at: float | None = None
    backoff_s: float = BACKOFF_FIRST_S
    probe_failures: int = 0
    next_probe_at: float = 0.0
    recent_restarts: deque[float] = field(default_factory=deque)

    @property
    def state(self) -> str:
        if self.restart_at is not None:
            return "crash-looping" if self.crash_looping else "restarting"
        return "running"

    @property
    def crash_looping(self) -> bool:
        return len(self.recent_restarts) > CRASH_LOOP_RESTARTS

    def report(self) -> dict[str, object]:
        return {
            "state": self.state,
            "pid": self.process.process.pid if self.process and self.restart_at is None else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "up_since": self.up_since.isoformat() if self.up_since else None,
        }


class Supervisor:
    def __init__(self, children: list[Child], state_file: Path, say: Callable[[str], None]):
        self.children = {child.name: child for child in children}
        self.state_file = state_file
        self.say = say

    def start(self, child: Child) -> None:
        child.process = child.launch()
        child.up_since = datetime.now(UTC)
        child.started_monotonic = time.monotonic()
        child.restart_at = None
        child.probe_failures = 0
        child.next_probe_at = child.started_monotonic + PROBE_GRACE_S

    def add(self, child: Child) -> None:
        """Supervise ``child`` from now on, starting it."""
        self.children[child.name] = child
        self.start(child)
        self.write_state()

    def check(self) -> None:
        """One pass: note exits, probe the live, restart what is due."""
        now = time.monotonic()
        changed = False
        for child in self.children.values():
            if child.restart_at is None:
                code = child.process.process.poll() if child.process else None
                if code is not None:
                    self._schedule_restart(child, code, now)
                    changed = True
                elif child.probe is not None and now >= child.next_probe_at:
                    changed |= self._probe(child, now)
            elif now >= child.restart_at:
                self.say(f"calib: restarting {child.name} (restart {child.restarts})")
                self.start(child)
                changed = True
        if changed:
            self.write_state()

    def _probe(self, child: Child, now: float) -> bool:
        child.next_probe_at = now + PROBE_INTERVAL_S
        if child.probe():
            child.probe_failures = 0
            return False
        child.probe_failures += 1
        if child.probe_failures < PROBE_FAILURES_TO_RESTART:
            return False
        self.say(f"calib: {child.name} stopped answering; killing it")
        child.process.kill()
        self._schedule_restart(child, UNRESPONSIVE, now)
        return True

    def _schedule_restart(self, child: Child, exit_code: int | str, now: float) -> None:
        if now - child.started_monotonic >= STABLE_AFTER_S:
            child.backoff_s = BACKOFF_FIRST_S
        child.last_exit = exit_code
        child.restarts += 1
        child.recent_restarts.append(now)
        while child.recent_restarts and child.recent_restarts[0] < now - CRASH_LOOP_WINDOW_S:
            child.recent_restarts.popleft()
        child.restart_at = now + child.backoff_s
        looping = " (crash-looping)" if child.crash_looping else ""
        self.say(
            f"calib: {child.name} exited (code {exit_code}){looping};"
            f" restarting in {child.backoff_s:.0f} s; log: {child.process.log_path}"
        )
        child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)

    def write_state(self) -> None:
        report = {name: child.report() for name, child in self.children.items()}
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(report, indent=2))
        os.replace(temporary, self.state_file)

    def stop_all(self, grace_s: float = 7.0) -> None:
        stop_all([c.process for c in self.children.values() if c.process is not None], grace_s)
