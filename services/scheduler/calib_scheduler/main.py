"""The scheduler service's composition root: resumption and sweep after every new master,
the sweep timer and the daily maintenance timer, bound to their use cases over this
process's adapters."""

from __future__ import annotations

from collections.abc import Awaitable

from calib_app.maintenance import run_due_tasks
from calib_app.queueing import JobQueue
from calib_app.sweep import after_new_master, sweep_all
from calib_core import events, wiring
from calib_infra import compose
from calib_infra.runtime import Runtime, run_service
from calib_scheduler.timers import every


def subscribe(runtime: Runtime, queue: JobQueue) -> None:
    runtime.consume(
        wiring.SCHEDULER_RESUME,
        events.MasterCreated,
        lambda event: after_new_master(queue, event.observatory_id),
    )


def timers(runtime: Runtime) -> list[Awaitable[None]]:
    """The sweep, and the poll that has the daily maintenance run when it is due."""
    queue = compose.job_queue(runtime)
    daily = compose.daily_maintenance(runtime)
    log = runtime.log
    return [
        every(
            runtime.config.sweep_interval_s,
            lambda: sweep_all(queue, runtime.observatories),
            lambda error: log.exception("sweep failed", error=str(error)),
        ),
        every(
            runtime.config.maintenance_poll_s,
            lambda: run_due_tasks(daily),
            lambda error: log.warning("daily maintenance not done, will retry", error=str(error)),
        ),
    ]


def setup(runtime: Runtime) -> None:
    subscribe(runtime, compose.job_queue(runtime))


def main() -> None:
    run_service("scheduler", setup, background=timers)


if __name__ == "__main__":
    main()
