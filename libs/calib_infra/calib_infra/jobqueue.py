"""Queueing stacking jobs: shared by the registry (registration trigger), the scheduler
(sweep, resumption) and the gateway (manual creation, retry)."""

from __future__ import annotations

from collections.abc import Sequence

from calib_core import events
from calib_core.grouping import FrameGroup, config_key, configuration, group_frames
from calib_core.models import Frame, FrameType, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.triggers import plan_job, repeats_failure, triggered_groups
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
    runtime: Runtime,
    group: FrameGroup,
    settings: CalibrationSettings,
    *,
    observatory_id: str,
    trigger: JobTrigger,
) -> tuple[StackJob, bool]:
    """Queue a job for ``group`` unless it has an open one. Returns (job, created)."""
    job = plan_job(
        group, settings, observatory_id=observatory_id, trigger=trigger, now=runtime.now()
    )
    if await runtime.jobs.create(job) is None:
        existing = await runtime.jobs.open_job_for(observatory_id, group.config_key)
        if existing is not None:
            return existing, False
        if await runtime.jobs.create(job) is None:  # the open job closed in between
            existing = await runtime.jobs.open_job_for(observatory_id, group.config_key)
            assert existing is not None
            return existing, False
    runtime.log.info(
        "stacking job queued",
        job_id=job.id,
        observatory_id=observatory_id,
        group=group.group_key,
        frames=len(job.frame_ids),
        trigger=trigger.value,
    )
    await publish_stack_request(runtime, job)
    return job, True


async def groups_with(
    runtime: Runtime, frame: Frame, settings: CalibrationSettings
) -> list[FrameGroup]:
    return group_frames(await runtime.frames.same_hardware(frame), settings)


async def check_triggers(
    runtime: Runtime, frames: Sequence[Frame], trigger: JobTrigger
) -> list[StackJob]:
    """Queue a master for every group of the just-stored ``frames`` that now holds enough
    unclaimed frames; returns the jobs created.

    One look per configuration however many of its frames arrived together. A
    configuration with an open job is skipped without loading its frames: it cannot get
    a second one, and the sweep that follows its master queues whatever is left.
    """
    created: list[StackJob] = []
    by_observatory: dict[str, list[Frame]] = {}
    for frame in frames:
        if frame.frame_type != FrameType.LIGHT and not frame.is_master:
            by_observatory.setdefault(frame.observatory_id, []).append(frame)
    for observatory_id, members in by_observatory.items():
        settings = await runtime.settings.get(observatory_id)
        by_config: dict[str, list[Frame]] = {}
        for frame in members:
            by_config.setdefault(config_key(configuration(frame, settings)), []).append(frame)
        busy = await runtime.jobs.configurations_with_open_jobs(observatory_id, list(by_config))
        for key in sorted(by_config.keys() - busy):
            new_ids = {f.id for f in by_config[key]}
            groups = await groups_with(runtime, by_config[key][0], settings)
            for group in triggered_groups(groups, new_ids, settings, runtime.now()):
                failed = await runtime.jobs.last_failed(observatory_id, group.config_key)
                if repeats_failure(group, failed, settings, runtime.now()):
                    runtime.log.info(
                        "automatic stacking skipped: these frames failed before",
                        observatory_id=observatory_id,
                        failed_job_id=failed.id,
                        group=group.group_key,
                    )
                    continue
                job, is_new = await queue_group(
                    runtime, group, settings, observatory_id=observatory_id, trigger=trigger
                )
                if is_new:
                    created.append(job)
    return created
