"""The periodic sweep and the resumption of deferred jobs (SPEC §5)."""

from __future__ import annotations

import asyncio

from calib_core import events
from calib_core.models import JobStatus, JobTrigger
from calib_core.triggers import find_group, retained_frames
from calib_infra.jobqueue import check_triggers, groups_with, publish_stack_request
from calib_infra.runtime import Runtime


async def sweep_observatory(runtime: Runtime, observatory_id: str) -> int:
    """Queue a job for every group that has reached the threshold (the registration
    trigger's rule, over every unclaimed frame); returns the jobs queued."""
    unclaimed = await runtime.frames.unclaimed_calibration_frames(observatory_id)
    queued = await check_triggers(runtime, unclaimed, JobTrigger.SWEEP)
    for job in await runtime.jobs.open_jobs(observatory_id):
        if job.status == JobStatus.QUEUED:
            # a request lost between the job insert and its publish; a repeat is dropped by
            # the stream
            await publish_stack_request(runtime, job)
    return len(queued)


async def resume_deferred(runtime: Runtime, observatory_id: str) -> int:
    """Re-queue deferred jobs (their missing master may now exist; the stacker re-checks)."""
    resumed = 0
    settings = await runtime.settings.get(observatory_id)
    for job in await runtime.jobs.deferred(observatory_id):
        frames = await runtime.frames.many(job.frame_ids)
        frame_ids = job.frame_ids
        if frames:
            group = find_group(await groups_with(runtime, frames[0], settings), frames[0].id)
            if group is not None:
                frame_ids = [
                    f.id for f in retained_frames(group, settings, runtime.now())
                ] or frame_ids
        requeued = await runtime.jobs.requeue(
            job.id, runtime.now(), from_statuses=[JobStatus.DEFERRED], frame_ids=frame_ids
        )
        if requeued is not None:
            runtime.log.info("deferred job resumed", job_id=job.id, observatory_id=observatory_id)
            await publish_stack_request(runtime, requeued)
            resumed += 1
    return resumed


async def sweep_all(runtime: Runtime) -> None:
    resumed = queued = 0
    observatories = await runtime.observatories.all()
    for observatory in observatories:
        resumed += await resume_deferred(runtime, observatory.id)
        queued += await sweep_observatory(runtime, observatory.id)
    runtime.log.info(
        "sweep finished", observatories=len(observatories), resumed=resumed, queued=queued
    )


async def sweep_forever(runtime: Runtime) -> None:
    while True:
        try:
            await sweep_all(runtime)
        except Exception as error:  # noqa: BLE001 - the next sweep tries again
            runtime.log.exception("sweep failed", error=str(error))
        await asyncio.sleep(runtime.config.sweep_interval_s)


async def handle_master_created(runtime: Runtime, event: events.MasterCreated) -> None:
    """A new master may be the dark (or bias) a deferred job was waiting for, and it
    frees its configuration for the next group that has enough frames."""
    await resume_deferred(runtime, event.observatory_id)
    await sweep_observatory(runtime, event.observatory_id)
