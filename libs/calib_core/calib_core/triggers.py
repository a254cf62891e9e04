"""When and what to stack (SPEC §5): pure decisions over a frame group."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from calib_core import events
from calib_core.grouping import FrameGroup, config_key, configuration, exposure_second
from calib_core.models import (
    Frame,
    FrameType,
    GroupProgress,
    JobStatus,
    JobTrigger,
    StackJob,
)
from calib_core.settings import CalibrationSettings
from calib_core.tolerance import within

MAX_FRAMES_PER_MASTER = 200
FLAT_DEFERRED_REASON = "Flat auto-stacking deferred: no matching master dark available"
CCD_DARK_DEFERRED_REASON = "Dark auto-stacking deferred: no matching master bias available"
CCD_FLAT_DEFERRED_REASON = "Flat auto-stacking deferred: no matching master bias available"


def frame_time(frame: Frame) -> datetime:
    return frame.captured_at or frame.registered_at


def retained_frames(group: FrameGroup, settings: CalibrationSettings, now: datetime) -> list[Frame]:
    """The group's frames within the type's max age, newest first, at most 200."""
    oldest = now - timedelta(days=settings.max_age_days(group.frame_type))
    fresh = [f for f in group.frames if frame_time(f) >= oldest]
    fresh.sort(key=lambda f: (frame_time(f), f.id), reverse=True)
    return fresh[:MAX_FRAMES_PER_MASTER]


def unclaimed_count(group: FrameGroup, settings: CalibrationSettings, now: datetime) -> int:
    return sum(1 for f in retained_frames(group, settings, now) if f.master_id is None)


def needs_master(group: FrameGroup, settings: CalibrationSettings, now: datetime) -> bool:
    """The automatic rule: enough unclaimed (new since the last master) retained frames."""
    return unclaimed_count(group, settings, now) >= settings.min_frames_for_master


def group_progress(
    group: FrameGroup, settings: CalibrationSettings, now: datetime
) -> GroupProgress:
    retained = retained_frames(group, settings, now)
    unclaimed = sum(1 for f in retained if f.master_id is None)
    return GroupProgress(
        unclaimed=unclaimed,
        retained=len(retained),
        threshold=settings.min_frames_for_master,
        complete=unclaimed >= settings.min_frames_for_master,
    )


def triggered_groups(
    groups: Sequence[FrameGroup],
    frame_ids: Collection[str],
    settings: CalibrationSettings,
    now: datetime,
) -> list[FrameGroup]:
    """The registration trigger: the groups holding any of the just-stored ``frame_ids``
    that now need a master (however many of their frames arrived together)."""
    return [
        g
        for g in groups
        if any(f.id in frame_ids for f in g.frames) and needs_master(g, settings, now)
    ]


def repeats_failure(
    group: FrameGroup, failed: StackJob | None, settings: CalibrationSettings, now: datetime
) -> bool:
    """True when an automatic job would stack only frames a failed job already tried:
    it would fail the same way, so the group waits for an administrator's retry (after
    fixing the cause) or for new frames."""
    if failed is None:
        return False
    tried = set(failed.frame_ids)
    return all(f.id in tried for f in retained_frames(group, settings, now))


def same_cluster(job: StackJob, group: FrameGroup, settings: CalibrationSettings) -> bool:
    """Whether ``job`` stacks ``group``'s temperature cluster: a group key shifts as frames
    arrive, so the temperatures are compared (within tolerance, or both unknown)."""
    return within(job.temperature_c, group.temperature_c, settings.temperature_tolerance_c)


def minimum_frames(settings: CalibrationSettings, force: bool) -> int:
    """Frames a manual creation needs: the threshold, or with ``force`` 1 (3 for sigma clip)."""
    if not force:
        return settings.min_frames_for_master
    return 3 if settings.stacking_method == "sigma_clip" else 1


def plan_job(
    group: FrameGroup,
    settings: CalibrationSettings,
    *,
    observatory_id: str,
    trigger: JobTrigger,
    now: datetime,
) -> StackJob:
    frames = retained_frames(group, settings, now)
    return StackJob(
        id=uuid.uuid4().hex,
        observatory_id=observatory_id,
        frame_type=group.frame_type,
        config_key=group.config_key,
        group_key=group.group_key,
        configuration=group.config,
        temperature_c=group.temperature_c,
        trigger=trigger,
        status=JobStatus.QUEUED,
        frame_ids=[f.id for f in frames],
        settings=msgspec.structs.asdict(settings),
        created_at=now,
        updated_at=now,
    )


def stack_request(job: StackJob) -> tuple[events.StackRequested, str]:
    """The request for ``job``'s next attempt and its message id. The id carries the
    attempt, so a retry is a new message while a repeat of one request is a duplicate."""
    attempt = job.attempts + 1
    request = events.StackRequested(
        job_id=job.id, observatory_id=job.observatory_id, attempt=attempt
    )
    return request, f"{job.id}-{attempt}"


def triggering_frames(frames: Iterable[Frame]) -> dict[str, list[Frame]]:
    """The frames that can start a master, by observatory: individual calibration frames
    (a light or a master never does)."""
    found: dict[str, list[Frame]] = {}
    for frame in frames:
        if frame.frame_type != FrameType.LIGHT and not frame.is_master:
            found.setdefault(frame.observatory_id, []).append(frame)
    return found


def by_configuration(
    frames: Iterable[Frame], settings: CalibrationSettings
) -> dict[str, list[Frame]]:
    """Calibration frames by the key of their configuration under ``settings``."""
    found: dict[str, list[Frame]] = {}
    for frame in frames:
        found.setdefault(config_key(configuration(frame, settings)), []).append(frame)
    return found


def find_group(groups: Sequence[FrameGroup], frame_id: str) -> FrameGroup | None:
    for group in groups:
        if any(f.id == frame_id for f in group.frames):
            return group
    return None


def group_matching(
    groups: Sequence[FrameGroup], request: dict[str, Any], settings: CalibrationSettings
) -> FrameGroup | None:
    """The group a manual request names: every configuration field given, and the
    temperature cluster nearest ``temperature_c`` (within tolerance) when one is given."""
    wanted = dict(request)
    if wanted.get("exposure_s") is not None and isinstance(wanted["exposure_s"], int | float):
        # CMOS dark configurations hold the exposure rounded to the second (§4)
        wanted["exposure_s"] = exposure_second(wanted["exposure_s"])
    candidates = [
        g
        for g in groups
        if all(wanted.get(k) is None or _same(wanted[k], v) for k, v in g.config.items())
        and (request.get("frame_type") is None or g.frame_type == FrameType(request["frame_type"]))
    ]
    temperature = request.get("temperature_c")
    if temperature is not None:
        candidates = [
            g
            for g in candidates
            if g.temperature_c is not None
            and abs(g.temperature_c - temperature) <= settings.temperature_tolerance_c
        ]
        candidates.sort(key=lambda g: abs((g.temperature_c or 0.0) - temperature))
    else:
        candidates.sort(key=lambda g: -len(g.frames))
    return candidates[0] if candidates else None


def _same(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, int | float) and isinstance(actual, int | float):
        return abs(float(wanted) - float(actual)) < 1e-9
    return wanted == actual
