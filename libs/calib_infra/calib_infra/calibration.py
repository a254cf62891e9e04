"""Calibration plans of stored lights and the calibrated-light cache (SPEC §7), shared by
the gateway (status, serving the cache, clearing it) and the lifecycle service
(computing, invalidating on master changes).

A cache entry is valid exactly while its light's plan (masters and warnings) has the
entry's signature; the gateway checks that on every request, so a stale entry is never
served even before its invalidation has run. Entries are removed like frames: mark,
delete the object, delete the record.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from calib_core import events
from calib_core.calibration import (
    CACHE_FAILED,
    CacheEntry,
    CalibrationPlan,
    light_status,
    plan_calibration,
)
from calib_core.models import Frame, FrameType
from calib_infra.bus import publish
from calib_infra.runtime import Runtime


async def plan_for(runtime: Runtime, light: Frame) -> CalibrationPlan:
    settings = await runtime.settings.get(light.observatory_id)
    masters = await runtime.frames.current_masters(light.observatory_id)
    return plan_calibration(light, masters, settings, runtime.now())


async def with_calibration(runtime: Runtime, frame: Frame) -> Frame:
    """A light with its calibration status, error, masters and warnings filled in
    (computed now, so always in step with the masters); other frames unchanged."""
    return (await with_calibrations(runtime, [frame]))[0]


async def with_calibrations(runtime: Runtime, frames: Sequence[Frame]) -> list[Frame]:
    """:func:`with_calibration` for a page of frames of one observatory: the settings,
    masters and cache entries are read once for all its lights."""
    lights = [f for f in frames if not f.is_master and f.frame_type == FrameType.LIGHT]
    if not lights:
        return list(frames)
    observatory_id = lights[0].observatory_id
    settings = await runtime.settings.get(observatory_id)
    masters = await runtime.frames.current_masters(observatory_id)
    entries = await runtime.cache.many([light.id for light in lights])
    now = runtime.now()

    def described(frame: Frame) -> Frame:
        if frame.is_master or frame.frame_type != FrameType.LIGHT:
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


async def cached(runtime: Runtime, plan: CalibrationPlan) -> CacheEntry | None:
    """The light's cache entry if it was made for this very plan: a failure, or a
    calibrated file that is still in the bucket."""
    entry = await runtime.cache.get(plan.light_id)
    if entry is None or entry.signature != plan.signature:
        return None
    if entry.status == CACHE_FAILED or await runtime.store.stat(entry.storage_key) is not None:
        return entry
    return None


async def drop_entry(runtime: Runtime, entry: CacheEntry) -> None:
    await runtime.cache.mark_deleting(entry.id)
    if entry.storage_key:
        await runtime.store.delete(entry.storage_key)
    await runtime.cache.delete(entry.id, entry.storage_key)


async def _publish_invalidated(
    runtime: Runtime, observatory_id: str, master_ids: Sequence[str], entries: int, msg_id: str
) -> None:
    await publish(
        runtime.broker,
        events.CACHE_INVALIDATED,
        events.CacheInvalidated(
            observatory_id=observatory_id, master_ids=list(master_ids), entries=entries
        ),
        observatory_id=observatory_id,
        msg_id=msg_id,
    )


async def invalidate_stale(
    runtime: Runtime, observatory_id: str, *, because_of: Sequence[str], msg_id: str
) -> int:
    """Drop the observatory's cache entries whose light's plan changed (a master was
    created, superseded, expired or deleted: ``because_of``); publish
    ``cache.invalidated`` when any went. Returns how many."""
    entries = await runtime.cache.entries(observatory_id)
    if not entries:
        return 0
    settings = await runtime.settings.get(observatory_id)
    masters = await runtime.frames.current_masters(observatory_id)
    lights = {f.id: f for f in await runtime.frames.many([e.id for e in entries])}
    now = runtime.now()
    stale = [
        e
        for e in entries
        if e.id not in lights
        or plan_calibration(lights[e.id], masters, settings, now).signature != e.signature
    ]
    for entry in stale:
        await drop_entry(runtime, entry)
    if stale:
        runtime.log.info(
            "calibrated cache invalidated",
            observatory_id=observatory_id,
            entries=len(stale),
            because_of=list(because_of),
        )
        await _publish_invalidated(runtime, observatory_id, because_of, len(stale), msg_id)
    return len(stale)


async def clear_cache(runtime: Runtime, observatory_id: str | None, request_id: str) -> int:
    """Drop every cache entry (of one observatory, or all); returns how many."""
    entries = await runtime.cache.entries(observatory_id)
    counts: dict[str, int] = {}
    for entry in entries:
        await drop_entry(runtime, entry)
        counts[entry.observatory_id] = counts.get(entry.observatory_id, 0) + 1
    for observatory, count in counts.items():
        await _publish_invalidated(
            runtime, observatory, [], count, f"cache-clear-{request_id}-{observatory}"
        )
    return len(entries)
