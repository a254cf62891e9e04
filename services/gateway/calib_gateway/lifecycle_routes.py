"""Deleting frames, calibrated lights, the cache and maintenance (SPEC §6, §7, §8).

Deletion and cache clearing are bounded work done here through the ``calib_app``
use cases. Calibration (numerics) and maintenance (whole-library scans) run in the
lifecycle service, asked over NATS request/reply; the gateway then streams the
calibrated file from the S3 cache. A cache entry is served only while its light's plan
(masters and warnings) is unchanged, so a stale file is never sent.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.exceptions import NotFoundException, ServiceUnavailableException

from calib_app.calibration import cached, clear_cache, plan_for
from calib_app.deletion import delete_frame
from calib_core.access import Capability
from calib_core.calibration import CACHE_FAILED
from calib_core.lifecycle import ExpiryReport, MaintenanceTask, RetentionReport
from calib_core.models import CalibrationStatus, FrameType
from calib_gateway.errors import error_response
from calib_gateway.guards import server_admin
from calib_gateway.library import frame_for, runtime_of, stream_object
from calib_infra import compose
from calib_infra.rpc import LifecycleClient, RemoteError, ServiceUnavailableError
from calib_infra.runtime import Runtime

CACHE_HEADER = "X-Calibration-Cache"
R = TypeVar("R")


class CacheCleared(msgspec.Struct, kw_only=True):
    observatory_id: str | None
    entries: int


async def _known(runtime: Runtime, observatory_id: str | None) -> None:
    if observatory_id is not None and await runtime.observatories.get(observatory_id) is None:
        raise NotFoundException(f"observatory '{observatory_id}' not found")


def _lifecycle_unavailable(error: Exception) -> ServiceUnavailableException:
    return ServiceUnavailableException(f"lifecycle is unavailable: {error}")


def _serve(runtime: Runtime, frame_id: str, key: str, *, hit: bool) -> Response:
    response = stream_object(runtime, key, "application/fits", f"{frame_id}-calibrated.fits")
    response.headers[CACHE_HEADER] = "hit" if hit else "miss"
    return response


# A function, not a controller method: Litestar refuses a second controller on the path
# of ``GET /frames/{id}`` (both would add an OPTIONS handler).
@delete("/api/v1/calibration/frames/{frame_id:str}", status_code=204)
async def delete_frame_route(request: Request, frame_id: str) -> None:
    """Delete a frame or master: its record, file and preview. A deleted source frame
    leaves its master's components; a deleted master's frames are unclaimed again."""
    frame = await frame_for(request, frame_id, Capability.MANAGE)
    await delete_frame(compose.frame_library(runtime_of(request)), frame)


class LifecycleController(Controller):
    path = "/api/v1/calibration"

    @get("/frames/{frame_id:str}/calibrated")
    async def calibrated(self, request: Request, frame_id: str) -> Response:
        """The calibrated light (FITS, float32), computed on first request and then served
        from the cache (header ``X-Calibration-Cache: hit|miss``). 409 with error
        ``no_masters`` or ``cal_failed`` when it cannot be made."""
        runtime = runtime_of(request)
        light = await frame_for(request, frame_id, Capability.VIEW)
        if light.is_master or light.frame_type != FrameType.LIGHT:
            raise NotFoundException(
                f"frame '{frame_id}' is not a light: only lights are calibrated"
            )
        library = compose.frame_library(runtime)
        plan = await plan_for(library, light)
        if plan.status != CalibrationStatus.CALIBRATED:
            return error_response(409, plan.error or plan.status.value, code=plan.status.value)
        entry = await cached(library, plan)
        if entry is not None and entry.status == CACHE_FAILED:
            return error_response(409, entry.error or "calibration failed", code="cal_failed")
        if entry is not None:
            return _serve(runtime, light.id, entry.storage_key, hit=True)
        try:
            reply = await LifecycleClient(runtime.broker).calibrate(light.id)
        except (ServiceUnavailableError, RemoteError) as error:
            raise _lifecycle_unavailable(error) from error
        if reply.status == "ready" and reply.storage_key:
            return _serve(runtime, light.id, reply.storage_key, hit=not reply.computed)
        if reply.status == "not_found":
            raise NotFoundException(reply.error or f"frame '{frame_id}' not found")
        code = "no_masters" if reply.status == "no_masters" else "cal_failed"
        return error_response(409, reply.error or code, code=code)

    @post("/cache/clear", guards=[server_admin], status_code=200)
    async def clear_cache(
        self, request: Request, observatory_id: str | None = None
    ) -> CacheCleared:
        """Delete every calibrated light of the server, or of one observatory."""
        runtime = runtime_of(request)
        await _known(runtime, observatory_id)
        entries = await clear_cache(
            compose.frame_library(runtime), observatory_id, uuid.uuid4().hex
        )
        return CacheCleared(observatory_id=observatory_id, entries=entries)

    @post("/maintenance/expiry-check", guards=[server_admin], status_code=200)
    async def expiry_check(
        self, request: Request, observatory_id: str | None = None
    ) -> ExpiryReport:
        """Masters past their type's max age become expired (server-wide, or one observatory)."""
        return await _maintenance(
            request, MaintenanceTask.EXPIRY_CHECK, observatory_id, ExpiryReport
        )

    @post("/maintenance/retention-cleanup", guards=[server_admin], status_code=200)
    async def retention_cleanup(
        self, request: Request, observatory_id: str | None = None
    ) -> RetentionReport:
        """Delete frames and superseded masters past retention, and orphaned objects
        (server-wide: the whole bucket; one observatory: its key prefixes)."""
        return await _maintenance(
            request, MaintenanceTask.RETENTION_CLEANUP, observatory_id, RetentionReport
        )


async def _maintenance(
    request: Request, task: MaintenanceTask, observatory_id: str | None, report_type: type[R]
) -> R:
    runtime = runtime_of(request)
    await _known(runtime, observatory_id)
    try:
        return await LifecycleClient(runtime.broker).maintenance(task, observatory_id, report_type)
    except (ServiceUnavailableError, RemoteError) as error:
        raise _lifecycle_unavailable(error) from error


LIFECYCLE_ROUTES = [LifecycleController, delete_frame_route]
