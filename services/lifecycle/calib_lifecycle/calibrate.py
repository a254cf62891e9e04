"""Calibrated lights on request (SPEC §7): computed once per plan, then kept in the S3 cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

from calib_core import events
from calib_core.calibration import (
    CACHE_FAILED,
    CACHE_READY,
    CacheEntry,
    CalibrationPlan,
    cache_storage_key,
    calibration_cards,
)
from calib_core.models import CalibrationStatus, Frame, FrameType
from calib_infra.calibration import cached, drop_entry, plan_for
from calib_infra.filecache import UnusableFileError
from calib_infra.runtime import Runtime
from calib_stack.calibrate import calibrate_light
from calib_stack.fitsio import InvalidFitsError

#: Memory for one band of the light, the masters and the output.
BAND_MEMORY_MB = 32


def _reply(entry: CacheEntry, computed: bool) -> events.CalibrateReply:
    if entry.status == CACHE_FAILED:
        return events.CalibrateReply(status="failed", error=entry.error, computed=computed)
    return events.CalibrateReply(status="ready", storage_key=entry.storage_key, computed=computed)


async def handle_calibrate(
    runtime: Runtime, request: events.CalibrateRequest
) -> events.CalibrateReply:
    light = await runtime.frames.get(request.frame_id)
    if light is None or light.is_master or light.frame_type != FrameType.LIGHT:
        return events.CalibrateReply(
            status="not_found", error=f"no light frame '{request.frame_id}'"
        )
    plan = await plan_for(runtime, light)
    if plan.status == CalibrationStatus.NO_MASTERS:
        return events.CalibrateReply(status="no_masters", error=plan.error)
    if plan.status == CalibrationStatus.CAL_FAILED:
        return events.CalibrateReply(status="failed", error=plan.error)
    if (entry := await cached(runtime, plan)) is not None:
        return _reply(entry, computed=False)
    if (
        stale := await runtime.cache.get(light.id)
    ) is not None:  # another plan's, or its file is gone
        await drop_entry(runtime, stale)
    entry = await _compute(runtime, light, plan)
    await runtime.cache.put(entry)
    return _reply(entry, computed=True)


async def _compute(runtime: Runtime, light: Frame, plan: CalibrationPlan) -> CacheEntry:
    """Download the light and its masters, calibrate band by band, upload the result."""
    log = runtime.log.bind(frame_id=light.id, observatory_id=light.observatory_id)
    inputs = {"light": light, "bias": plan.bias, "dark": plan.dark, "flat": plan.flat}
    key = cache_storage_key(light.observatory_id, light.id, plan.signature)
    entry = CacheEntry(
        id=light.id,
        observatory_id=light.observatory_id,
        signature=plan.signature,
        status=CACHE_READY,
        masters=plan.masters,
        warnings=plan.warnings,
        created_at=runtime.now(),
        storage_key=key,
    )
    with runtime.files.workdir(prefix="calibrate-") as workdir:
        paths: dict[str, Path] = {}
        names: dict[str, str] = {}
        try:
            for role, frame in inputs.items():
                if frame is None:
                    continue
                paths[role] = workdir / f"{role}.fits"
                names[str(paths[role])] = f"{role} {frame.id}"
                await runtime.files.fetch_frame(frame, paths[role], role)
            await runtime.files.trim()
            output = workdir / "calibrated.fits"
            await asyncio.to_thread(
                calibrate_light,
                paths["light"],
                output,
                bias=paths.get("bias"),
                dark=paths.get("dark"),
                flat=paths.get("flat"),
                dark_scale=light.exposure_s if plan.camera_type == "CCD" else 1.0,
                flat_scale=_flat_median(plan.flat),
                cards=calibration_cards(plan, entry.created_at),
                memory_limit_mb=BAND_MEMORY_MB,
            )
        except (UnusableFileError, InvalidFitsError) as error:
            text = str(error)
            for path, name in names.items():
                text = text.replace(path, name)
            log.warning("calibration failed", error=text)
            entry.status, entry.storage_key, entry.error = (
                CACHE_FAILED,
                None,
                f"calibration failed: {text}",
            )
            return entry
        await runtime.store.put_file(key, output)
        entry.size_bytes = output.stat().st_size
    log.info("light calibrated", masters=plan.masters, warnings=len(plan.warnings))
    return entry


def _flat_median(flat: Frame | None) -> float:
    """Master flats are normalised to median 1; an uploaded one may not be."""
    median = (flat.stats or {}).get("median") if flat is not None else None
    return float(median) if isinstance(median, int | float) and median > 0 else 1.0
