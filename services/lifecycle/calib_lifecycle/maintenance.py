"""The expiry check and the retention cleanup (SPEC §6), for one observatory or all.

Asked for by the scheduler (daily) and the gateway (on demand) over request/reply; a
server-wide run is recorded so the scheduler knows when the next one is due.
"""

from __future__ import annotations

import msgspec

from calib_core import events
from calib_core.lifecycle import (
    ExpiryReport,
    ExpiryState,
    MaintenanceTask,
    RetentionReport,
    expiry_state,
    frames_past_retention,
    masters_past_retention,
    masters_to_expire,
)
from calib_infra.bus import publish
from calib_infra.calibration import invalidate_stale
from calib_infra.deletion import delete_frame, delete_orphans, finish_pending
from calib_infra.runtime import Runtime


async def _observatories(runtime: Runtime, observatory_id: str | None) -> list[str]:
    if observatory_id is not None:
        return [observatory_id]
    return [o.id for o in await runtime.observatories.all()]


async def expiry_check(runtime: Runtime, observatory_id: str | None) -> ExpiryReport:
    """Active masters past their type's max age become ``expired`` (and stay in use)."""
    now = runtime.now()
    checked = expired = soon = invalidated = 0
    observatories = await _observatories(runtime, observatory_id)
    for observatory in observatories:
        settings = await runtime.settings.get(observatory)
        current = await runtime.frames.current_masters(observatory)
        checked += len(current)
        newly_expired = []
        for master in masters_to_expire(current, settings, now):
            # the event first: a crash before the update repeats both (the repeat is dropped)
            await publish(
                runtime.broker,
                events.MASTER_EXPIRED,
                events.MasterExpired(master_id=master.id, observatory_id=observatory),
                observatory_id=observatory,
                msg_id=f"expired-{master.id}",
            )
            if await runtime.frames.expire(master.id):
                runtime.log.info("master expired", master_id=master.id, observatory_id=observatory)
                newly_expired.append(master.id)
        expired += len(newly_expired)
        soon += sum(expiry_state(m, settings, now) == ExpiryState.EXPIRING_SOON for m in current)
        if newly_expired:
            # cached files name their warnings: an expired master is now a stale one
            invalidated += await invalidate_stale(
                runtime,
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
        finished_at=runtime.now(),
    )


async def retention_cleanup(runtime: Runtime, observatory_id: str | None) -> RetentionReport:
    """Finish interrupted deletions, delete frames and superseded masters past retention,
    then objects no record names (orphans)."""
    now = runtime.now()
    resumed = await finish_pending(runtime, observatory_id)
    frames_deleted = masters_deleted = 0
    observatories = await _observatories(runtime, observatory_id)
    for observatory in observatories:
        settings = await runtime.settings.get(observatory)
        masters = await runtime.frames.masters(observatory)
        for frame in await runtime.frames.many(
            sorted(frames_past_retention(masters, settings, now))
        ):
            if not frame.is_master and frame.observatory_id == observatory:
                await delete_frame(runtime, frame)
                frames_deleted += 1
        for master in masters_past_retention(masters, settings, now):
            await delete_frame(runtime, master)
            masters_deleted += 1
    orphans = await delete_orphans(runtime, observatory_id, now)
    return RetentionReport(
        observatory_id=observatory_id,
        observatories=len(observatories),
        frames_deleted=frames_deleted,
        masters_deleted=masters_deleted,
        orphans_deleted=orphans,
        resumed_deletions=resumed,
        finished_at=runtime.now(),
    )


async def run_maintenance(runtime: Runtime, command: events.MaintenanceCommand) -> msgspec.Struct:
    task = MaintenanceTask(command.task)
    log = runtime.log.bind(task=task.value, observatory_id=command.observatory_id)
    log.info("maintenance started")
    run = expiry_check if task == MaintenanceTask.EXPIRY_CHECK else retention_cleanup
    report = await run(runtime, command.observatory_id)
    if command.observatory_id is None:
        await runtime.maintenance_runs.record(
            task.value, report.finished_at, msgspec.to_builtins(report)
        )
    log.info("maintenance finished", **msgspec.structs.asdict(report))
    return report
