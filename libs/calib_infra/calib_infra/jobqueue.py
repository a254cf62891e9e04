"""Queueing stacking jobs: shared by the registry (registration trigger), the scheduler
(sweep, resumption) and the gateway (manual creation, retry)."""

from __future__ import annotations

from calib_core import events
from calib_core.grouping import FrameGroup, group_frames
from calib_core.models import Frame, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.triggers import find_group, needs_master, plan_job
from calib_infra.bus import publish
from calib_infra.runtime import Runtime


async def publish_stack_request(runtime: Runtime, job: StackJob) -> None:
    """Ask the stackers for ``job``. The message id carries the attempt number, so a
    retry is a new message while a repeat of the same request is dropped by the stream."""
    attempt = job.attempts + 1
    await publish(
        runtime.broker,
        events.STACK_REQUESTED,
        events.StackRequested(job_id=job.id, observatory_id=job.observatory_id, attempt=attempt),
        observatory_id=job.observatory_id,
        msg_id=f"{job.id}-{attempt}",
    )


async def queue_group(
    runtime: Runtime, group: FrameGroup, settings: CalibrationSettings, *, observatory_id: str,
    trigger: JobTrigger,
) -> tuple[StackJob, bool]:
    """Queue a job for ``group`` unless it has an open one. Returns (job, created)."""
    job = plan_job(group, settings, observatory_id=observatory_id, trigger=trigger, now=runtime.now())
    if await runtime.jobs.create(job) is None:
        existing = await runtime.jobs.open_job_for(observatory_id, group.config_key)
        if existing is not None:
            return existing, False
        if await runtime.jobs.create(job) is None:  # the open job closed in between
            existing = await runtime.jobs.open_job_for(observatory_id, group.config_key)
            assert existing is not None
            return existing, False
    runtime.log.info("stacking job queued", job_id=job.id, observatory_id=observatory_id,
                     group=group.group_key, frames=len(job.frame_ids), trigger=trigger.value)
    await publish_stack_request(runtime, job)
    return job, True


async def groups_with(runtime: Runtime, frame: Frame, settings: CalibrationSettings) -> list[FrameGroup]:
    return group_frames(await runtime.frames.same_hardware(frame), settings)


async def check_trigger(runtime: Runtime, frame: Frame, trigger: JobTrigger) -> StackJob | None:
    """Queue a master for ``frame``'s group if it now holds enough unclaimed frames."""
    settings = await runtime.settings.get(frame.observatory_id)
    group = find_group(await groups_with(runtime, frame, settings), frame.id)
    if group is None or not needs_master(group, settings, runtime.now()):
        return None
    job, _ = await queue_group(runtime, group, settings, observatory_id=frame.observatory_id, trigger=trigger)
    return job
