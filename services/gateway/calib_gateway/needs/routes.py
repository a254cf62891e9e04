"""Summary, needs and capture plan of one observatory."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from calib_app import needs as reports
from calib_app.needs import Inventory
from calib_core.needs import CapturePlan, Needs
from calib_core.summary import Summary
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_read_capture_plan, can_view


class NeedsController(Controller):
    path = "/api/v1/calibration"

    @get("/summary/{observatory_id:str}", guards=[can_view])
    async def summary(
        self, inventory: Injected[Inventory], observatory_id: FromPath[str]
    ) -> Summary:
        """Frame counts and current masters per camera and configuration."""
        return await reports.summary(inventory, observatory_id)

    @get("/needs/{observatory_id:str}", guards=[can_view])
    async def needs(self, inventory: Injected[Inventory], observatory_id: FromPath[str]) -> Needs:
        """Uncovered configurations, accumulation progress, expiry warnings, deferred and
        active jobs."""
        return await reports.needs_report(inventory, observatory_id)

    @get("/capture-plan/{observatory_id:str}", guards=[can_read_capture_plan])
    async def capture_plan(
        self, inventory: Injected[Inventory], observatory_id: FromPath[str]
    ) -> CapturePlan:
        """What to capture next: per needed configuration the target, current and remaining
        frame counts. The observatory's plugin token may read it."""
        return await reports.capture_plan(inventory, observatory_id)
