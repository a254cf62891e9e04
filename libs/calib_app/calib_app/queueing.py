"""Queueing stacking jobs (SPEC §5): the registration trigger, the sweep, the resumption
of deferred jobs, manual creation and retries all queue through here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from calib_app.ports import (
    Clock,
    EventPublisher,
    FrameRepository,
    JobRepository,
    Log,
    SettingsRepository,
)
from calib_core import events
from calib_core.grouping import FrameGroup, group_frames
from calib_core.models import Frame, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.triggers import (
    by_configuration,
    plan_job,
    repeats_failure,
    same_cluster,
    stack_request,
    triggered_groups,
    triggering_frames,
)


@dataclass(frozen=True)
class JobQueue:
    frames: FrameRepository
    jobs: JobRepository
    settings: SettingsRepository
    events: EventPublisher
    clock: Clock
    log: Log


async def publish_stack_request(publisher: EventPublisher, job: StackJob) -> None:
    """Ask the stackers for ``job``: a retry is a new message, a repeat of the same
    request is dropped by the stream (see :func:`calib_core.triggers.stack_request`)."""
    request, msg_id = stack_request(job)
    await publisher.publish(
        events.STACK_REQUESTED, request, observatory_id=job.observatory_id, msg_id=msg_id
    )


async def queue_group(
    queue: JobQueue,
    group: FrameGroup,
    settings: CalibrationSettings,
    *,
    observatory_id: str,
    trigger: JobTrigger,
) -> tuple[StackJob, bool]:
    """Queue a job for ``group`` unless its configuration has an open one. Returns (the
    job, whether it is new). A manual job whose configuration's open job stacks another
    temperature cluster takes a slot of its own (:attr:`StackJob.cluster_slot`)."""
    job = plan_job(
        group, settings, observatory_id=observatory_id, trigger=trigger, now=queue.clock.now()
    )
    if await queue.jobs.create(job) is None:
        existing = await queue.jobs.open_job_for(observatory_id, group.config_key)
        if existing is None and await queue.jobs.create(job) is None:
            # the open job closed in between, and another took the slot
            existing = await queue.jobs.open_job_for(observatory_id, group.config_key)
            assert existing is not None
        if existing is not None:
            if trigger != JobTrigger.MANUAL or same_cluster(existing, group, settings):
                return existing, False
            job = msgspec.structs.replace(job, cluster_slot=group.group_key)
            if await queue.jobs.create(job) is None:
                slot = [o for o in await queue.jobs.open_jobs(observatory_id) if o.cluster_slot]
                return next(o for o in slot if o.cluster_slot == group.group_key), False
    queue.log.info(
        "stacking job queued",
        job_id=job.id,
        observatory_id=observatory_id,
        group=group.group_key,
        frames=len(job.frame_ids),
        trigger=trigger.value,
    )
    await publish_stack_request(queue.events, job)
    return job, True


async def groups_with(
    frames: FrameRepository, frame: Frame, settings: CalibrationSettings
) -> list[FrameGroup]:
    """The groups of the frames that can share a group with ``frame``."""
    return group_frames(await frames.same_hardware(frame), settings)


async def check_triggers(
    queue: JobQueue, frames: Sequence[Frame], trigger: JobTrigger
) -> list[StackJob]:
    """Queue a master for every group of the just-stored ``frames`` that now holds enough
    unclaimed frames; returns the jobs created.

    One look per configuration however many of its frames arrived together. A
    configuration with an open job is skipped without loading its frames: it cannot get
    a second one, and the sweep that follows its master queues whatever is left.
    """
    created: list[StackJob] = []
    for observatory_id, members in triggering_frames(frames).items():
        settings = await queue.settings.get(observatory_id)
        arrivals = by_configuration(members, settings)
        busy = await queue.jobs.configurations_with_open_jobs(observatory_id, list(arrivals))
        for key in sorted(arrivals.keys() - busy):
            arrived = arrivals[key]
            groups = await groups_with(queue.frames, arrived[0], settings)
            now = queue.clock.now()
            for group in triggered_groups(groups, {f.id for f in arrived}, settings, now):
                failed = await queue.jobs.last_failed(observatory_id, group.config_key)
                if repeats_failure(group, failed, settings, now):
                    queue.log.info(
                        "automatic stacking skipped: these frames failed before",
                        observatory_id=observatory_id,
                        failed_job_id=failed.id,
                        group=group.group_key,
                    )
                    continue
                job, is_new = await queue_group(
                    queue, group, settings, observatory_id=observatory_id, trigger=trigger
                )
                if is_new:
                    created.append(job)
    return created
