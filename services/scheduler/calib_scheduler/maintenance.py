"""The daily expiry check and retention cleanup (SPEC §6): the scheduler asks the
lifecycle service to run a task when its last server-wide run (recorded by the
lifecycle service in MongoDB) is an interval old, so a restart neither skips nor
repeats a day. A run that fails (lifecycle down) is asked for again at the next poll.
"""

from __future__ import annotations

import asyncio

from calib_core.lifecycle import ExpiryReport, MaintenanceTask, RetentionReport, maintenance_due
from calib_infra.rpc import request_maintenance
from calib_infra.runtime import Runtime

REPORTS = {
    MaintenanceTask.EXPIRY_CHECK: ExpiryReport,
    MaintenanceTask.RETENTION_CLEANUP: RetentionReport,
}


def intervals(runtime: Runtime) -> dict[MaintenanceTask, float]:
    return {
        MaintenanceTask.EXPIRY_CHECK: runtime.config.expiry_check_interval_s,
        MaintenanceTask.RETENTION_CLEANUP: runtime.config.retention_interval_s,
    }


async def run_due_tasks(runtime: Runtime) -> list[MaintenanceTask]:
    """Ask for every task that is due; returns those that ran."""
    ran = []
    for task, interval_s in intervals(runtime).items():
        if not maintenance_due(
            await runtime.maintenance_runs.last_run(task.value), runtime.now(), interval_s
        ):
            continue
        report = await request_maintenance(runtime, task, None, REPORTS[task])
        runtime.log.info("daily maintenance done", task=task.value, report=str(report))
        ran.append(task)
    return ran


async def maintenance_forever(runtime: Runtime) -> None:
    while True:
        try:
            await run_due_tasks(runtime)
        except Exception as error:  # noqa: BLE001 - asked again at the next poll
            runtime.log.warning("daily maintenance not done, will retry", error=str(error))
        await asyncio.sleep(runtime.config.maintenance_poll_s)
