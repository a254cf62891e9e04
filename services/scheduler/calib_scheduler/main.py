"""The scheduler service: the sweep timer, resumption of deferred jobs, daily maintenance."""

from __future__ import annotations

from calib_core import events, wiring
from calib_infra.runtime import Runtime, run_service
from calib_scheduler.maintenance import maintenance_forever
from calib_scheduler.sweep import handle_master_created, sweep_forever


def setup(runtime: Runtime) -> None:
    runtime.consume(
        wiring.SCHEDULER_RESUME,
        events.MasterCreated,
        lambda event: handle_master_created(runtime, event),
    )


def main() -> None:
    run_service(
        "scheduler",
        setup,
        background=lambda runtime: [sweep_forever(runtime), maintenance_forever(runtime)],
    )


if __name__ == "__main__":
    main()
