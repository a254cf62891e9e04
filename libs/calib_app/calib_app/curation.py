"""Curation (SPEC §6, "Curation: held frames"): releasing held frames, and each frame's
place in the groups the triggers count."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from calib_app.queueing import JobQueue, check_triggers
from calib_core.grouping import HARDWARE_FIELDS, group_frames
from calib_core.models import Frame, FrameType, JobTrigger, StackJob
from calib_core.triggers import group_progress


async def release_frames(
    queue: JobQueue, frames: Sequence[Frame]
) -> tuple[list[str], list[StackJob]]:
    """Release the held ones of ``frames``: they can be stacked again at once, so the
    registration trigger's rule runs for them. Returns the ids released and the jobs
    queued."""
    held = [f.id for f in frames if f.held]
    if not held:
        return [], []
    await queue.frames.unhold(held)
    queue.log.info("frames released", frame_ids=held)
    released = await queue.frames.many(held)
    return held, await check_triggers(queue, released, JobTrigger.REGISTRATION)


def _hardware(frame: Frame) -> tuple:
    """What :meth:`FrameRepository.same_hardware` selects on."""
    shared = tuple(getattr(frame, name) for name in HARDWARE_FIELDS)
    return (*shared, frame.filter if frame.frame_type == FrameType.FLAT else None)


async def with_groups(queue: JobQueue, frames: Sequence[Frame]) -> list[Frame]:
    """Individual calibration frames of one observatory with the configuration and group
    the server puts them in and the group's progress towards a master (held frames
    are in no group)."""
    individual = [f for f in frames if not f.is_master and f.frame_type != FrameType.LIGHT]
    if not individual:
        return list(frames)
    settings = await queue.settings.get(individual[0].observatory_id)
    # only the frames that can share a group with the page's: one query per hardware
    samples = {_hardware(f): f for f in individual}
    pool = [f for sample in samples.values() for f in await queue.frames.same_hardware(sample)]
    groups = group_frames(pool, settings)
    now = queue.clock.now()
    placed = {}
    for group in groups:
        progress = group_progress(group, settings, now)
        for member in group.frames:
            placed[member.id] = (group, progress)

    def described(frame: Frame) -> Frame:
        if frame.id not in placed:
            return frame
        group, progress = placed[frame.id]
        return msgspec.structs.replace(
            frame, config_key=group.config_key, group_key=group.group_key, group=progress
        )

    return [described(f) for f in frames]
