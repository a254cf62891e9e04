"""What an observatory still needs (SPEC §9): uncovered configurations, accumulation
progress, expiry warnings, deferred and active jobs, and the capture plan the plugin
follows. Pure functions over frames, masters, jobs and settings.

A *need* is one calibration configuration (type, hardware, and per type exposure,
filter, rotation, temperature) that should be captured. Needs come from light frames
of the last 30 days that no current master calibrates ("uncovered") or only an expired
one does ("stale"), and from frames that cannot be stacked yet because their
prerequisite master is missing (flats without a matching dark, CCD darks without a bias).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from calib_core.grouping import (
    FrameGroup,
    cluster,
    cluster_angles,
    config_key,
    configuration,
    group_frames,
    mean_angle,
)
from calib_core.lifecycle import ExpiryState, expires_at, expiry_state
from calib_core.matching import find_master, prerequisite_type
from calib_core.models import (
    CURRENT_MASTER_STATUSES,
    Frame,
    FrameMetadata,
    FrameType,
    JobStatus,
    MasterStatus,
    StackJob,
)
from calib_core.settings import CalibrationSettings
from calib_core.tolerance import angle_within, within
from calib_core.triggers import frame_time, unclaimed_count

LIGHT_WINDOW_DAYS = 30
#: "Expiring soon" = within this fraction of the type's max age (SPEC §6).

NeedReason = Literal["uncovered", "expired", "prerequisite"]


class Need(msgspec.Struct, kw_only=True):
    """A configuration to capture. ``exposure_s`` only for CMOS darks, ``filter`` only for
    flats, ``rotation_deg`` only for flats when rotation matters, no temperature for bias."""

    frame_type: FrameType
    camera_name: str
    gain: float | None
    offset: float | None
    binning: str
    readout_mode: str | None
    exposure_s: float | None = None
    filter: str | None = None
    rotation_deg: float | None = None
    temperature_c: float | None = None
    reason: NeedReason
    light_count: int = 0


class CapturePlanItem(Need, kw_only=True):
    target_count: int
    current_count: int
    remaining: int


class Accumulation(msgspec.Struct, kw_only=True):
    frame_type: FrameType
    configuration: dict[str, Any]
    group_key: str
    temperature_c: float | None
    rotation_deg: float | None
    count: int
    threshold: int
    percent: float


class ExpiryWarning(msgspec.Struct, kw_only=True):
    master_id: str
    frame_type: FrameType
    camera_name: str
    config_key: str | None
    temperature_c: float | None
    status: MasterStatus
    created_at: datetime
    expires_at: datetime
    age_days: float
    max_age_days: int
    state: Literal["expired", "expiring"]


class JobSummary(msgspec.Struct, kw_only=True):
    job_id: str
    status: JobStatus
    frame_type: FrameType
    configuration: dict[str, Any]
    temperature_c: float | None
    frame_count: int
    progress: float
    trigger: str
    reason: str | None
    created_at: datetime
    updated_at: datetime


class Needs(msgspec.Struct, kw_only=True):
    observatory_id: str
    generated_at: datetime
    uncovered_configurations: list[Need]
    accumulation_progress: list[Accumulation]
    expiry_warnings: list[ExpiryWarning]
    deferred: list[JobSummary]
    active_jobs: list[JobSummary]


class CapturePlan(msgspec.Struct, kw_only=True):
    observatory_id: str
    generated_at: datetime
    items: list[CapturePlanItem]


# -- needs from light frames ---------------------------------------------------------


def needed_types(light: FrameMetadata, settings: CalibrationSettings) -> list[FrameType]:
    """The masters a light is calibrated with (SPEC §7): bias only on CCD."""
    types = [FrameType.DARK, FrameType.FLAT]
    return [FrameType.BIAS, *types] if settings.camera_type == "CCD" else types


def recent_lights(frames: Iterable[Frame], now: datetime) -> list[Frame]:
    oldest = now - timedelta(days=LIGHT_WINDOW_DAYS)
    return [
        f
        for f in frames
        if f.frame_type == FrameType.LIGHT and not f.is_master and frame_time(f) >= oldest
    ]


def _as_type(frame: FrameMetadata, frame_type: FrameType) -> FrameMetadata:
    """``frame``'s hardware state seen as a frame of ``frame_type`` (filter only for flats)."""
    return FrameMetadata(
        frame_type=frame_type,
        camera_name=frame.camera_name,
        exposure_s=frame.exposure_s,
        width=frame.width,
        height=frame.height,
        gain=frame.gain,
        offset=frame.offset,
        binning=frame.binning,
        readout_mode=frame.readout_mode,
        filter=frame.filter if frame_type == FrameType.FLAT else None,
        temperature_c=frame.temperature_c,
        rotation_deg=frame.rotation_deg,
    )


def _rotation_matters(frame_type: FrameType, settings: CalibrationSettings) -> bool:
    return frame_type == FrameType.FLAT and settings.rotation_matching != "ignore"


def _needs_from(
    frames: Sequence[FrameMetadata],
    frame_type: FrameType,
    reason: NeedReason,
    settings: CalibrationSettings,
    *,
    count_lights: bool,
) -> list[Need]:
    """Cluster ``frames`` (all wanting a ``frame_type`` master) into needs: one per
    configuration, rotation cluster (flats, when it matters) and temperature cluster."""
    by_config: dict[str, tuple[dict[str, Any], list[FrameMetadata]]] = {}
    for frame in frames:
        config = configuration(_as_type(frame, frame_type), settings)
        by_config.setdefault(config_key(config), (config, []))[1].append(frame)
    needs = []
    for key in sorted(by_config):
        config, members = by_config[key]
        rotation_clusters = (
            cluster_angles(members, lambda f: f.rotation_deg, settings.rotation_tolerance_deg)
            if _rotation_matters(frame_type, settings)
            else [members]
        )
        for rotation_cluster in rotation_clusters:
            temperature_clusters = (
                [rotation_cluster]
                if frame_type == FrameType.BIAS
                else cluster(
                    rotation_cluster, lambda f: f.temperature_c, settings.temperature_tolerance_c
                )
            )
            for members_ in temperature_clusters:
                temperatures = [f.temperature_c for f in members_ if f.temperature_c is not None]
                needs.append(
                    Need(
                        frame_type=frame_type,
                        camera_name=config["camera_name"],
                        gain=config["gain"],
                        offset=config["offset"],
                        binning=config["binning"],
                        readout_mode=config["readout_mode"],
                        exposure_s=config.get("exposure_s"),
                        filter=config.get("filter"),
                        rotation_deg=(
                            mean_angle(f.rotation_deg for f in members_)
                            if _rotation_matters(frame_type, settings)
                            else None
                        ),
                        temperature_c=(
                            round(sum(temperatures) / len(temperatures), 2)
                            if temperatures and frame_type != FrameType.BIAS
                            else None
                        ),
                        reason=reason,
                        light_count=len(members_) if count_lights else 0,
                    )
                )
    return needs


def light_needs(
    frames: Iterable[Frame],
    masters: Sequence[Frame],
    settings: CalibrationSettings,
    now: datetime,
) -> list[Need]:
    """Needs of the light frames of the last 30 days: a type with no current master
    (``uncovered``) or only an expired one (``expired``)."""
    wanting: dict[tuple[FrameType, NeedReason], list[Frame]] = {}
    for light in recent_lights(frames, now):
        for frame_type in needed_types(light, settings):
            best = find_master(masters, frame_type=frame_type, target=light, settings=settings)
            if best is None:
                wanting.setdefault((frame_type, "uncovered"), []).append(light)
            elif expiry_state(best, settings, now) == ExpiryState.EXPIRED:
                wanting.setdefault((frame_type, "expired"), []).append(light)
    needs = []
    for (frame_type, reason), lights in wanting.items():
        needs += _needs_from(lights, frame_type, reason, settings, count_lights=True)
    return _sorted(needs)


def uncovered_configurations(
    frames: Iterable[Frame],
    masters: Sequence[Frame],
    settings: CalibrationSettings,
    now: datetime,
) -> list[Need]:
    return [n for n in light_needs(frames, masters, settings, now) if n.reason == "uncovered"]


# -- matching needs with the frames already captured ----------------------------------


def _need_config(need: Need, settings: CalibrationSettings) -> dict[str, Any]:
    sample = FrameMetadata(
        frame_type=need.frame_type,
        camera_name=need.camera_name,
        exposure_s=need.exposure_s if need.exposure_s is not None else 0.0,
        width=0,
        height=0,
        gain=need.gain,
        offset=need.offset,
        binning=need.binning,
        readout_mode=need.readout_mode,
        filter=need.filter,
    )
    return configuration(sample, settings)


def matching_groups(
    need: Need, groups: Sequence[FrameGroup], settings: CalibrationSettings
) -> list[FrameGroup]:
    """Groups of captured frames that would stack into a master meeting ``need``."""
    key = config_key(_need_config(need, settings))
    found = []
    for group in groups:
        if group.config_key != key:
            continue
        if need.frame_type != FrameType.BIAS and not within(
            group.temperature_c, need.temperature_c, settings.temperature_tolerance_c
        ):
            continue
        if _rotation_matters(need.frame_type, settings) and not angle_within(
            group.rotation_deg, need.rotation_deg, settings.rotation_tolerance_deg
        ):
            continue
        found.append(group)
    return found


def _best_group(
    need: Need, groups: Sequence[FrameGroup], settings: CalibrationSettings, now: datetime
) -> tuple[FrameGroup | None, int]:
    best, count = None, 0
    for group in matching_groups(need, groups, settings):
        unclaimed = unclaimed_count(group, settings, now)
        if best is None or unclaimed > count:
            best, count = group, unclaimed
    return best, count


def prerequisite_needs(
    samples: Iterable[Frame],
    masters: Sequence[Frame],
    settings: CalibrationSettings,
) -> list[Need]:
    """Masters missing for captured frames to be stacked at all: a dark for flats (at the
    flats' exposure and temperature), a bias for CCD darks."""
    wanting: dict[FrameType, list[Frame]] = {}
    for frame in samples:
        needed = prerequisite_type(frame.frame_type, settings)
        if (
            needed is not None
            and find_master(masters, frame_type=needed, target=frame, settings=settings) is None
        ):
            wanting.setdefault(needed, []).append(frame)
    needs = []
    for frame_type, frames in wanting.items():
        needs += _needs_from(frames, frame_type, "prerequisite", settings, count_lights=False)
    return needs


def _merge(needs: Iterable[Need], settings: CalibrationSettings) -> list[Need]:
    """One need per configuration and temperature/rotation: the first reason wins, light
    counts add up."""
    merged: list[Need] = []
    for need in needs:
        same = next(
            (
                m
                for m in merged
                if m.frame_type == need.frame_type
                and config_key(_need_config(m, settings))
                == config_key(_need_config(need, settings))
                and within(m.temperature_c, need.temperature_c, settings.temperature_tolerance_c)
                and angle_within(m.rotation_deg, need.rotation_deg, settings.rotation_tolerance_deg)
            ),
            None,
        )
        if same is None:
            merged.append(msgspec.structs.replace(need))
        else:
            same.light_count += need.light_count
    return merged


_TYPE_ORDER = {FrameType.BIAS: 0, FrameType.DARK: 1, FrameType.FLAT: 2}


def _sorted(needs: Iterable[Need]) -> list[Need]:
    def key(n: Need) -> tuple:
        return (
            _TYPE_ORDER[n.frame_type],
            n.camera_name,
            str(n.gain),
            str(n.offset),
            n.binning,
            n.readout_mode or "",
            n.filter or "",
            n.exposure_s or 0.0,
            n.rotation_deg if n.rotation_deg is not None else -1.0,
            n.temperature_c if n.temperature_c is not None else 1e9,
        )

    return sorted(needs, key=key)


def capture_plan(
    observatory_id: str,
    frames: Sequence[Frame],
    masters: Sequence[Frame],
    jobs: Sequence[StackJob],
    settings: CalibrationSettings,
    now: datetime,
) -> CapturePlan:
    """What the plugin should capture next: one item per needed configuration, with how
    many frames it already has towards the next master and how many remain.

    ``frames`` are the observatory's individual frames (calibration frames and recent
    lights), ``masters`` its current masters, ``jobs`` its open jobs. The same filter at
    two gains is two configurations, so two items.
    """
    individual = [f for f in frames if not f.is_master]
    groups = group_frames(individual, settings)
    from_lights = light_needs(individual, masters, settings, now)
    # frames being collected for a need, and frames of deferred jobs, may themselves
    # need a master first (the dark to subtract from flats, the bias for CCD darks)
    by_id = {f.id: f for f in individual}
    samples = [
        f for n in from_lights if (g := _best_group(n, groups, settings, now)[0]) for f in g.frames
    ]
    samples += [
        by_id[i]
        for job in jobs
        if job.status == JobStatus.DEFERRED
        for i in job.frame_ids
        if i in by_id
    ]
    needs = _merge([*from_lights, *prerequisite_needs(samples, masters, settings)], settings)
    items = []
    for need in _sorted(needs):
        _, current = _best_group(need, groups, settings, now)
        target = settings.min_frames_for_master
        items.append(
            CapturePlanItem(
                **msgspec.structs.asdict(need),
                target_count=target,
                current_count=current,
                remaining=max(0, target - current),
            )
        )
    return CapturePlan(observatory_id=observatory_id, generated_at=now, items=items)


# -- progress, expiry, jobs --------------------------------------------------------------


def accumulation_progress(
    frames: Sequence[Frame], settings: CalibrationSettings, now: datetime
) -> list[Accumulation]:
    """Every group with unclaimed frames below the stacking threshold, closest first."""
    entries = []
    threshold = settings.min_frames_for_master
    for group in group_frames(frames, settings):
        count = unclaimed_count(group, settings, now)
        if 0 < count < threshold:
            entries.append(
                Accumulation(
                    frame_type=group.frame_type,
                    configuration=group.config,
                    group_key=group.group_key,
                    temperature_c=group.temperature_c,
                    rotation_deg=group.rotation_deg,
                    count=count,
                    threshold=threshold,
                    percent=round(100.0 * count / threshold, 1),
                )
            )
    entries.sort(key=lambda e: (-e.percent, e.group_key))
    return entries


def expiry_warnings(
    masters: Iterable[Frame], settings: CalibrationSettings, now: datetime
) -> list[ExpiryWarning]:
    """Current masters that are expired or within 20 % of their max age of expiring."""
    warnings = []
    for master in masters:
        if not master.is_master or master.status not in CURRENT_MASTER_STATUSES:
            continue
        expiry = expiry_state(master, settings, now)
        if expiry == ExpiryState.CURRENT:
            continue
        state: Literal["expired", "expiring"] = (
            "expired" if expiry == ExpiryState.EXPIRED else "expiring"
        )
        created = master.creation_time
        max_age = settings.max_age_days(master.frame_type)
        warnings.append(
            ExpiryWarning(
                master_id=master.id,
                frame_type=master.frame_type,
                camera_name=master.camera_name,
                config_key=master.config_key,
                temperature_c=master.temperature_c,
                status=master.status or MasterStatus.ACTIVE,
                created_at=created,
                expires_at=expires_at(master, settings),
                age_days=round((now - created).total_seconds() / 86400.0, 2),
                max_age_days=max_age,
                state=state,
            )
        )
    warnings.sort(key=lambda w: (w.expires_at, w.master_id))
    return warnings


def job_summary(job: StackJob) -> JobSummary:
    return JobSummary(
        job_id=job.id,
        status=job.status,
        frame_type=job.frame_type,
        configuration=job.configuration,
        temperature_c=job.temperature_c,
        frame_count=len(job.frame_ids),
        progress=job.progress,
        trigger=job.trigger.value,
        reason=job.deferred_reason if job.status == JobStatus.DEFERRED else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def assess(
    observatory_id: str,
    frames: Sequence[Frame],
    masters: Sequence[Frame],
    jobs: Sequence[StackJob],
    settings: CalibrationSettings,
    now: datetime,
) -> Needs:
    """The needs report of one observatory (SPEC §9)."""
    ordered = sorted(jobs, key=lambda j: (j.created_at, j.id))
    frames = [f for f in frames if not f.is_master]
    return Needs(
        observatory_id=observatory_id,
        generated_at=now,
        uncovered_configurations=uncovered_configurations(frames, masters, settings, now),
        accumulation_progress=accumulation_progress(frames, settings, now),
        expiry_warnings=expiry_warnings(masters, settings, now),
        deferred=[job_summary(j) for j in ordered if j.status == JobStatus.DEFERRED],
        active_jobs=[
            job_summary(j) for j in ordered if j.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        ],
    )
