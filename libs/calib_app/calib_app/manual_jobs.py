"""What people do to stacking jobs (SPEC §5, §8): stack a group now, retry a failed job,
delete a failed one. A manual job goes through the same queue as the automatic ones."""

from __future__ import annotations

from typing import Any

from calib_app.errors import ConflictError, NotFoundError, RefusedError
from calib_app.queueing import JobQueue, publish_stack_request, queue_group
from calib_core.grouping import FrameGroup, config_key, configuration, group_frames
from calib_core.models import Frame, FrameType, JobStatus, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.triggers import group_matching, minimum_frames, retained_frames


async def stack_now(
    queue: JobQueue,
    observatory_id: str,
    frame_type: FrameType,
    request: dict[str, Any],
    *,
    force: bool,
) -> StackJob:
    """Queue the group ``request`` names (configuration fields, maybe a temperature) if
    it holds enough frames; ``force`` lowers the threshold (see ``minimum_frames``).
    Answers the configuration's open job when it has one."""
    settings = await queue.settings.get(observatory_id)
    frames = await queue.frames.calibration_frames(observatory_id, frame_type=frame_type.value)
    group = group_matching(group_frames(frames, settings), request, settings)
    if group is None:
        raise NotFoundError("no frames match that configuration (held frames do not count)")
    needed = minimum_frames(settings, force)
    retained = retained_frames(group, settings, queue.clock.now())
    if len(retained) < needed:
        raise RefusedError(_too_few(group, retained, frames, needed, force, settings))
    job, _ = await queue_group(
        queue, group, settings, observatory_id=observatory_id, trigger=JobTrigger.MANUAL
    )
    return job


def _too_few(
    group: FrameGroup,
    retained: list[Frame],
    frames: list[Frame],
    needed: int,
    force: bool,
    settings: CalibrationSettings,
) -> str:
    """Why a group cannot be stacked now: how many frames it has, and which do not count."""
    left_out = []
    if (old := len(group.frames) - len(retained)) > 0:
        days = settings.max_age_days(group.frame_type)
        left_out.append(f"{old} older than the {group.frame_type.value} max age of {days} days")
    held = sum(
        1 for f in frames if f.held and config_key(configuration(f, settings)) == group.config_key
    )
    if held:
        left_out.append(f"{held} held")
    return (
        f"the group has {len(retained)} frames to stack"
        + (f" ({', '.join(left_out)} not counted)" if left_out else "")
        + f"; {needed} needed"
        + ("" if force else " (use force to stack fewer)")
    )


async def retry_job(queue: JobQueue, job: StackJob) -> StackJob:
    """Queue a failed job again, as a new request to the stackers."""
    requeued = await queue.jobs.requeue(
        job.id,
        queue.clock.now(),
        from_statuses=[JobStatus.FAILED],
        trigger=JobTrigger.RETRY.value,
    )
    if requeued is None:
        raise ConflictError(
            f"job '{job.id}' is {job.status.value}: only failed jobs can be retried "
            "(or the group already has an open job)"
        )
    await publish_stack_request(queue.events, requeued)
    return requeued


async def delete_failed_job(queue: JobQueue, job: StackJob) -> None:
    if job.status != JobStatus.FAILED:
        raise ConflictError(f"only failed jobs can be deleted (job is {job.status.value})")
    await queue.jobs.delete(job.id)
