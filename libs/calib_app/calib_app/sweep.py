"""The scheduler's sweep and the resumption of deferred jobs (SPEC §5): periodically, and
whenever a new master may have freed a configuration or be the master a deferred job
waits for."""

from __future__ import annotations

from calib_app.ports import ObservatoryRepository
from calib_app.queueing import JobQueue, check_triggers, groups_with, publish_stack_request
from calib_core.models import JobStatus, JobTrigger
from calib_core.triggers import find_group, retained_frames


async def sweep_observatory(queue: JobQueue, observatory_id: str) -> int:
    """Queue a job for every group that has reached the threshold (the registration
    trigger's rule, over every unclaimed frame); returns the jobs queued."""
    unclaimed = await queue.frames.unclaimed_calibration_frames(observatory_id)
    queued = await check_triggers(queue, unclaimed, JobTrigger.SWEEP)
    for job in await queue.jobs.open_jobs(observatory_id):
        if job.status == JobStatus.QUEUED:
            # a request lost between the job insert and its publish; a repeat is dropped by
            # the stream
            await publish_stack_request(queue.events, job)
    return len(queued)


async def resume_deferred(queue: JobQueue, observatory_id: str) -> int:
    """Re-queue deferred jobs (their missing master may now exist; the stacker re-checks)
    with the frames their group holds now; returns how many."""
    resumed = 0
    settings = await queue.settings.get(observatory_id)
    for job in await queue.jobs.deferred(observatory_id):
        frames = await queue.frames.many(job.frame_ids)
        frame_ids = job.frame_ids
        if frames:
            group = find_group(await groups_with(queue.frames, frames[0], settings), frames[0].id)
            if group is not None:
                retained = retained_frames(group, settings, queue.clock.now())
                frame_ids = [f.id for f in retained] or frame_ids
        requeued = await queue.jobs.requeue(
            job.id, queue.clock.now(), from_statuses=[JobStatus.DEFERRED], frame_ids=frame_ids
        )
        if requeued is not None:
            queue.log.info("deferred job resumed", job_id=job.id, observatory_id=observatory_id)
            await publish_stack_request(queue.events, requeued)
            resumed += 1
    return resumed


async def sweep_all(queue: JobQueue, observatories: ObservatoryRepository) -> None:
    """Resume deferred jobs and sweep, observatory by observatory."""
    resumed = queued = 0
    every_observatory = await observatories.all()
    for observatory in every_observatory:
        resumed += await resume_deferred(queue, observatory.id)
        queued += await sweep_observatory(queue, observatory.id)
    queue.log.info(
        "sweep finished", observatories=len(every_observatory), resumed=resumed, queued=queued
    )


async def after_new_master(queue: JobQueue, observatory_id: str) -> None:
    """A new master may be the dark (or bias) a deferred job was waiting for, and it
    frees its configuration for the next group that has enough frames."""
    await resume_deferred(queue, observatory_id)
    await sweep_observatory(queue, observatory_id)
