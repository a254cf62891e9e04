"""Where the calibrated file of a light is, for a download (SPEC §7).

Served from the cache while the entry was made for the light's current plan (so a
stale file is never sent), else computed by the lifecycle service, which holds the
numerics; a failure is remembered for the plan as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from calib_app.calibration import FrameLibrary, cached, plan_for
from calib_app.errors import ConflictError, NotFoundError
from calib_app.ports import LifecycleService
from calib_core.calibration import CACHE_FAILED
from calib_core.models import CalibrationStatus, Frame, FrameType


@dataclass(frozen=True)
class CalibratedFile:
    storage_key: str
    from_cache: bool


class NotCalibratedError(ConflictError):
    """The light cannot be calibrated: ``code`` is ``no_masters`` or ``cal_failed``."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code


async def calibrated_file(
    library: FrameLibrary, lifecycle: LifecycleService, light: Frame
) -> CalibratedFile:
    if light.is_master or light.frame_type != FrameType.LIGHT:
        raise NotFoundError(f"frame '{light.id}' is not a light: only lights are calibrated")
    plan = await plan_for(library, light)
    if plan.status != CalibrationStatus.CALIBRATED:
        raise NotCalibratedError(plan.status.value, plan.error or plan.status.value)
    entry = await cached(library, plan)
    if entry is not None and entry.status == CACHE_FAILED:
        raise NotCalibratedError("cal_failed", entry.error or "calibration failed")
    if entry is not None:
        return CalibratedFile(storage_key=entry.storage_key, from_cache=True)
    reply = await lifecycle.calibrate(light.id)
    if reply.status == "ready" and reply.storage_key:
        return CalibratedFile(storage_key=reply.storage_key, from_cache=not reply.computed)
    if reply.status == "not_found":
        raise NotFoundError(reply.error or f"frame '{light.id}' not found")
    code = "no_masters" if reply.status == "no_masters" else "cal_failed"
    raise NotCalibratedError(code, reply.error or code)
