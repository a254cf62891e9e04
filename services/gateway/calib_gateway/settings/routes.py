"""Reading and changing an observatory's calibration settings."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, get, put
from litestar.exceptions import ClientException
from litestar.params import FromPath

from calib_app.ports import SettingsRepository
from calib_core.settings import CalibrationSettings, apply_changes
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_manage, can_view


class SettingsController(Controller):
    path = "/api/v1/calibration"

    @get("/settings/{observatory_id:str}", guards=[can_view])
    async def get_settings(
        self, settings: Injected[SettingsRepository], observatory_id: FromPath[str]
    ) -> CalibrationSettings:
        return await settings.get(observatory_id)

    @put("/settings/{observatory_id:str}", guards=[can_manage])
    async def put_settings(
        self,
        request: Request,
        settings: Injected[SettingsRepository],
        observatory_id: FromPath[str],
    ) -> CalibrationSettings:
        """Change some or all settings (a JSON object of them). A refused value is a 422
        naming the field (``field``), and leaves the stored settings as they were."""
        try:
            changes = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as error:
            raise ClientException(f"invalid JSON: {error}") from error
        if not isinstance(changes, dict):
            raise ClientException("expected a JSON object of settings")
        updated = apply_changes(await settings.get(observatory_id), changes)
        await settings.put(observatory_id, updated)
        return updated
