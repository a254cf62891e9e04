"""Calibration plans of stored lights, the calibrated-light cache and computing a
calibrated light (SPEC §7).

A cache entry is valid exactly while its light's plan (masters and warnings) has the
entry's signature; the gateway checks that on every request, so a stale entry is never
served even before its invalidation has run. Entries are removed like frames: mark,
delete the object, delete the record. Calibrated files are computed by the lifecycle
service (:func:`calibrate`), which holds the numerics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from calib_app.ports import (
    CalibrationCacheRepository,
    Clock,
    EventPublisher,
    FrameFiles,
    FrameRepository,
    InvalidImageError,
    LightCalibrator,
    Log,
    ObjectStore,
    SettingsRepository,
    UnusableFileError,
)
from calib_core import events
from calib_core.calibration import (
    CACHE_FAILED,
    CACHE_READY,
    CacheEntry,
    CalibrationPlan,
    cache_storage_key,
    calibration_cards,
    dark_scale,
    flat_scale,
    light_status,
    plan_calibration,
)
from calib_core.models import CalibrationStatus, Frame, FrameType


@dataclass(frozen=True)
class FrameLibrary:
    """The stored frames and masters with their calibrated-light cache: what planning,
    caching, deleting and superseding read and write. The cache is kept in step with
    every change of the masters."""

    frames: FrameRepository
    settings: SettingsRepository
    cache: CalibrationCacheRepository
    store: ObjectStore
    events: EventPublisher
    clock: Clock
    log: Log


@dataclass(frozen=True)
class LightCalibration:
    """What computing calibrated lights needs besides the library: local copies of the
    light and its masters, and the numerics."""

    library: FrameLibrary
    files: FrameFiles
    calibrator: LightCalibrator


async def plan_for(library: FrameLibrary, light: Frame) -> CalibrationPlan:
    settings = await library.settings.get(light.observatory_id)
    masters = await library.frames.current_masters(light.observatory_id)
    return plan_calibration(light, masters, settings, library.clock.now())


async def with_calibration(library: FrameLibrary, frame: Frame) -> Frame:
    """A light with its calibration status, error, masters and warnings filled in
    (computed now, so always in step with the masters); other frames unchanged."""
    return (await with_calibrations(library, [frame]))[0]


def _is_light(frame: Frame) -> bool:
    return not frame.is_master and frame.frame_type == FrameType.LIGHT


async def with_calibrations(library: FrameLibrary, frames: Sequence[Frame]) -> list[Frame]:
    """:func:`with_calibration` for a page of frames of one observatory: the settings,
    masters and cache entries are read once for all its lights."""
    lights = [f for f in frames if _is_light(f)]
    if not lights:
        return list(frames)
    observatory_id = lights[0].observatory_id
    settings = await library.settings.get(observatory_id)
    masters = await library.frames.current_masters(observatory_id)
    entries = await library.cache.many([light.id for light in lights])
    now = library.clock.now()

    def described(frame: Frame) -> Frame:
        if not _is_light(frame):
            return frame
        plan = plan_calibration(frame, masters, settings, now)
        status, error = light_status(plan, entries.get(frame.id))
        return msgspec.structs.replace(
            frame,
            calibration_status=status,
            calibration_error=error,
            calibration_masters=plan.masters,
            calibration_warnings=plan.warnings,
        )

    return [described(frame) for frame in frames]


async def cached(library: FrameLibrary, plan: CalibrationPlan) -> CacheEntry | None:
    """The light's cache entry if it was made for this very plan: a failure, or a
    calibrated file that is still in the bucket."""
    entry = await library.cache.get(plan.light_id)
    if entry is None or entry.signature != plan.signature:
        return None
    if entry.status == CACHE_FAILED or await library.store.stat(entry.storage_key) is not None:
        return entry
    return None


async def drop_entry(library: FrameLibrary, entry: CacheEntry) -> None:
    await library.cache.mark_deleting(entry.id)
    if entry.storage_key:
        await library.store.delete(entry.storage_key)
    await library.cache.delete(entry.id, entry.storage_key)


async def _publish_invalidated(
    library: FrameLibrary, observatory_id: str, master_ids: Sequence[str], entries: int, msg_id: str
) -> None:
    await library.events.publish(
        events.CACHE_INVALIDATED,
        events.CacheInvalidated(
            observatory_id=observatory_id, master_ids=list(master_ids), entries=entries
        ),
        observatory_id=observatory_id,
        msg_id=msg_id,
    )


async def invalidate_stale(
    library: FrameLibrary, observatory_id: str, *, because_of: Sequence[str], msg_id: str
) -> int:
    """Drop the observatory's cache entries whose light's plan changed (a master was
    created, superseded, expired or deleted: ``because_of``); publish
    ``cache.invalidated`` when any went. Returns how many."""
    entries = await library.cache.entries(observatory_id)
    if not entries:
        return 0
    settings = await library.settings.get(observatory_id)
    masters = await library.frames.current_masters(observatory_id)
    lights = {f.id: f for f in await library.frames.many([e.id for e in entries])}
    now = library.clock.now()
    stale = [
        e
        for e in entries
        if e.id not in lights
        or plan_calibration(lights[e.id], masters, settings, now).signature != e.signature
    ]
    for entry in stale:
        await drop_entry(library, entry)
    if stale:
        library.log.info(
            "calibrated cache invalidated",
            observatory_id=observatory_id,
            entries=len(stale),
            because_of=list(because_of),
        )
        await _publish_invalidated(library, observatory_id, because_of, len(stale), msg_id)
    return len(stale)


async def clear_cache(library: FrameLibrary, observatory_id: str | None, request_id: str) -> int:
    """Drop every cache entry (of one observatory, or all); returns how many."""
    entries = await library.cache.entries(observatory_id)
    counts: dict[str, int] = {}
    for entry in entries:
        await drop_entry(library, entry)
        counts[entry.observatory_id] = counts.get(entry.observatory_id, 0) + 1
    for observatory, count in counts.items():
        await _publish_invalidated(
            library, observatory, [], count, f"cache-clear-{request_id}-{observatory}"
        )
    return len(entries)


def _reply(entry: CacheEntry, computed: bool) -> events.CalibrateReply:
    if entry.status == CACHE_FAILED:
        return events.CalibrateReply(status="failed", error=entry.error, computed=computed)
    return events.CalibrateReply(status="ready", storage_key=entry.storage_key, computed=computed)


async def calibrate(calibration: LightCalibration, frame_id: str) -> events.CalibrateReply:
    """The calibrated light of ``frame_id``: from the cache when it holds one for the
    light's current plan, else computed once and cached (a failure too, for this plan)."""
    library = calibration.library
    light = await library.frames.get(frame_id)
    if light is None or not _is_light(light):
        return events.CalibrateReply(status="not_found", error=f"no light frame '{frame_id}'")
    plan = await plan_for(library, light)
    if plan.status == CalibrationStatus.NO_MASTERS:
        return events.CalibrateReply(status="no_masters", error=plan.error)
    if plan.status == CalibrationStatus.CAL_FAILED:
        return events.CalibrateReply(status="failed", error=plan.error)
    if (entry := await cached(library, plan)) is not None:
        return _reply(entry, computed=False)
    if (stale := await library.cache.get(light.id)) is not None:  # another plan's, or lost
        await drop_entry(library, stale)
    entry = await _compute(calibration, light, plan)
    await library.cache.put(entry)
    return _reply(entry, computed=True)


async def _compute(
    calibration: LightCalibration, light: Frame, plan: CalibrationPlan
) -> CacheEntry:
    """Fetch the light and its masters, calibrate, upload the result."""
    library, files = calibration.library, calibration.files
    log = library.log.bind(frame_id=light.id, observatory_id=light.observatory_id)
    inputs = {"light": light, "bias": plan.bias, "dark": plan.dark, "flat": plan.flat}
    key = cache_storage_key(light.observatory_id, light.id, plan.signature)
    entry = CacheEntry(
        id=light.id,
        observatory_id=light.observatory_id,
        signature=plan.signature,
        status=CACHE_READY,
        masters=plan.masters,
        warnings=plan.warnings,
        created_at=library.clock.now(),
        storage_key=key,
    )
    with files.workdir(prefix="calibrate-") as workdir:
        paths: dict[str, Path] = {}
        names: dict[str, str] = {}  # local path -> what an error message calls the file
        try:
            for role, frame in inputs.items():
                if frame is not None:
                    paths[role] = workdir / f"{role}.fits"
                    names[str(paths[role])] = f"{role} {frame.id}"
                    await files.fetch_frame(frame, paths[role], role)
            await files.trim()
            output = workdir / "calibrated.fits"
            await calibration.calibrator.calibrate(
                paths["light"],
                output,
                bias=paths.get("bias"),
                dark=paths.get("dark"),
                flat=paths.get("flat"),
                dark_scale=dark_scale(plan, light),
                flat_scale=flat_scale(plan),
                cards=calibration_cards(plan, entry.created_at),
            )
        except (UnusableFileError, InvalidImageError) as error:
            text = str(error)
            for path, name in names.items():
                text = text.replace(path, name)
            log.warning("calibration failed", error=text)
            return msgspec.structs.replace(
                entry, status=CACHE_FAILED, storage_key=None, error=f"calibration failed: {text}"
            )
        await library.store.put_file(key, output)
        size_bytes = output.stat().st_size
    log.info("light calibrated", masters=plan.masters, warnings=len(plan.warnings))
    return msgspec.structs.replace(entry, size_bytes=size_bytes)
