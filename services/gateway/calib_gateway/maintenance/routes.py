"""Clearing the calibrated-light cache (done here), and the expiry check and retention
cleanup, which the lifecycle service runs when asked (they scan the whole library)."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery

from calib_app import calibration
from calib_app.calibration import FrameLibrary
from calib_app.ports import LifecycleService, ObservatoryRepository
from calib_core.lifecycle import ExpiryReport, MaintenanceTask, RetentionReport
from calib_gateway.dependencies import Injected
from calib_gateway.guards import server_admin


class CacheCleared(msgspec.Struct, kw_only=True):
    observatory_id: str | None
    entries: int


async def _known(observatories: ObservatoryRepository, observatory_id: str | None) -> None:
    if observatory_id is not None and await observatories.get(observatory_id) is None:
        raise NotFoundException(f"observatory '{observatory_id}' not found")


class MaintenanceController(Controller):
    path = "/api/v1/calibration"
    guards = [server_admin]

    @post("/cache/clear", status_code=200)
    async def clear_cache(
        self,
        library: Injected[FrameLibrary],
        observatories: Injected[ObservatoryRepository],
        observatory_id: FromQuery[str | None] = None,
    ) -> CacheCleared:
        """Delete every calibrated light of the server, or of one observatory."""
        await _known(observatories, observatory_id)
        entries = await calibration.clear_cache(library, observatory_id, uuid.uuid4().hex)
        return CacheCleared(observatory_id=observatory_id, entries=entries)

    @post("/maintenance/expiry-check", status_code=200)
    async def expiry_check(
        self,
        lifecycle: Injected[LifecycleService],
        observatories: Injected[ObservatoryRepository],
        observatory_id: FromQuery[str | None] = None,
    ) -> ExpiryReport:
        """Masters past their type's max age become expired (server-wide, or one observatory)."""
        await _known(observatories, observatory_id)
        return await lifecycle.maintenance(
            MaintenanceTask.EXPIRY_CHECK, observatory_id, ExpiryReport
        )

    @post("/maintenance/retention-cleanup", status_code=200)
    async def retention_cleanup(
        self,
        lifecycle: Injected[LifecycleService],
        observatories: Injected[ObservatoryRepository],
        observatory_id: FromQuery[str | None] = None,
    ) -> RetentionReport:
        """Delete frames and superseded masters past retention, and orphaned objects
        (server-wide: the whole bucket; one observatory: its key prefixes)."""
        await _known(observatories, observatory_id)
        return await lifecycle.maintenance(
            MaintenanceTask.RETENTION_CLEANUP, observatory_id, RetentionReport
        )
