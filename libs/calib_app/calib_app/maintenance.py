"""The expiry check and the retention cleanup (SPEC §6), for one observatory or all.

The lifecycle service runs them when asked (:func:`run_maintenance`): by the scheduler
once a day (:func:`run_due_tasks`) and by the gateway on demand. A server-wide run is
recorded, so the scheduler knows when the next one is due: a restart neither skips nor
repeats a day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from calib_app.calibration import FrameLibrary, invalidate_stale
from calib_app.deletion import delete_frame, delete_orphans, finish_pending
from calib_app.ports import (
    Clock,
    EventBacklog,
    LifecycleService,
    Log,
    MaintenanceRunRepository,
    ObservatoryRepository,
    PendingUploadRepository,
)
from calib_core import events
from calib_core.lifecycle import (
    ExpiryReport,
    ExpiryState,
    MaintenanceTask,
    RetentionReport,
    expiry_state,
    frames_past_retention,
    maintenance_due,
    masters_past_retention,
    masters_to_expire,
)
from calib_core.presigned import pending_cutoff

REPORTS: dict[MaintenanceTask, type[ExpiryReport] | type[RetentionReport]] = {
    MaintenanceTask.EXPIRY_CHECK: ExpiryReport,
    MaintenanceTask.RETENTION_CLEANUP: RetentionReport,
}


@dataclass(frozen=True)
class Maintenance:
    """What the lifecycle service's maintenance tasks need."""

    library: FrameLibrary
    observatories: ObservatoryRepository
    runs: MaintenanceRunRepository
    pending_uploads: PendingUploadRepository
    """What names objects before the library does: uploads handed out to plugins ..."""
    backlog: EventBacklog
    """... and the frame registrations not handled yet (the orphan cleanup keeps theirs)."""


async def _observatories(maintenance: Maintenance, observatory_id: str | None) -> list[str]:
    if observatory_id is not None:
        return [observatory_id]
    return [o.id for o in await maintenance.observatories.all()]


async def expiry_check(maintenance: Maintenance, observatory_id: str | None) -> ExpiryReport:
    """Active masters past their type's max age become ``expired`` (and stay in use)."""
    library = maintenance.library
    now = library.clock.now()
    checked = expired = soon = invalidated = 0
    observatories = await _observatories(maintenance, observatory_id)
    for observatory in observatories:
        settings = await library.settings.get(observatory)
        current = await library.frames.current_masters(observatory)
        checked += len(current)
        newly_expired = []
        for master in masters_to_expire(current, settings, now):
            # the event first: a crash before the update repeats both (the repeat is dropped)
            await library.events.publish(
                events.MASTER_EXPIRED,
                events.MasterExpired(master_id=master.id, observatory_id=observatory),
                observatory_id=observatory,
                msg_id=f"expired-{master.id}",
            )
            if await library.frames.expire(master.id):
                library.log.info("master expired", master_id=master.id, observatory_id=observatory)
                newly_expired.append(master.id)
        expired += len(newly_expired)
        soon += sum(expiry_state(m, settings, now) == ExpiryState.EXPIRING_SOON for m in current)
        if newly_expired:
            # cached files name their warnings: an expired master is now a stale one
            invalidated += await invalidate_stale(
                library,
                observatory,
                because_of=newly_expired,
                msg_id=f"cache-expired-{min(newly_expired)}",
            )
    return ExpiryReport(
        observatory_id=observatory_id,
        observatories=len(observatories),
        checked=checked,
        expired=expired,
        expiring_soon=soon,
        cache_entries_invalidated=invalidated,
        finished_at=library.clock.now(),
    )


async def retention_cleanup(
    maintenance: Maintenance, observatory_id: str | None
) -> RetentionReport:
    """Finish interrupted deletions, delete frames and superseded masters past retention,
    then objects no record names (orphans), then pending uploads that are over."""
    library = maintenance.library
    now = library.clock.now()
    resumed = await finish_pending(library, observatory_id)
    frames_deleted = masters_deleted = 0
    observatories = await _observatories(maintenance, observatory_id)
    for observatory in observatories:
        settings = await library.settings.get(observatory)
        masters = await library.frames.masters(observatory)
        for frame in await library.frames.many(
            sorted(frames_past_retention(masters, settings, now))
        ):
            if not frame.is_master and frame.observatory_id == observatory:
                await delete_frame(library, frame)
                frames_deleted += 1
        for master in masters_past_retention(masters, settings, now):
            await delete_frame(library, master)
            masters_deleted += 1
    orphans = await delete_orphans(
        library,
        observatory_id,
        now,
        pending=maintenance.pending_uploads,
        backlog=maintenance.backlog,
    )
    uploads_removed = await maintenance.pending_uploads.remove_expired(
        pending_cutoff(now), observatory_id
    )
    return RetentionReport(
        observatory_id=observatory_id,
        observatories=len(observatories),
        frames_deleted=frames_deleted,
        masters_deleted=masters_deleted,
        orphans_deleted=orphans,
        resumed_deletions=resumed,
        finished_at=library.clock.now(),
        pending_uploads_removed=uploads_removed,
    )


async def run_maintenance(
    maintenance: Maintenance, task: MaintenanceTask, observatory_id: str | None
) -> ExpiryReport | RetentionReport:
    """Run ``task``; a server-wide run (``observatory_id`` None) is recorded."""
    log = maintenance.library.log.bind(task=task.value, observatory_id=observatory_id)
    log.info("maintenance started")
    run = expiry_check if task == MaintenanceTask.EXPIRY_CHECK else retention_cleanup
    report = await run(maintenance, observatory_id)
    if observatory_id is None:
        await maintenance.runs.record(task.value, report.finished_at, msgspec.to_builtins(report))
    log.info("maintenance finished", **msgspec.structs.asdict(report))
    return report


@dataclass(frozen=True)
class DailyMaintenance:
    """What the scheduler needs to have the daily tasks run."""

    runs: MaintenanceRunRepository
    lifecycle: LifecycleService
    intervals: Mapping[MaintenanceTask, float]
    """Seconds between two server-wide runs of each task."""
    clock: Clock
    log: Log


async def run_due_tasks(daily: DailyMaintenance) -> list[MaintenanceTask]:
    """Ask the lifecycle service for every task whose last server-wide run is an interval
    old; returns those that ran."""
    ran = []
    for task, interval_s in daily.intervals.items():
        if not maintenance_due(
            await daily.runs.last_run(task.value), daily.clock.now(), interval_s
        ):
            continue
        report = await daily.lifecycle.maintenance(task, None, REPORTS[task])
        daily.log.info("daily maintenance done", task=task.value, report=str(report))
        ran.append(task)
    return ran
