"""Summary, needs and capture plan of one observatory (SPEC §8–§9): the repositories
load the state, ``calib_core`` decides."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from litestar import Controller, Request, get

from calib_core.needs import LIGHT_WINDOW_DAYS, CapturePlan, Needs, assess, capture_plan
from calib_core.summary import CountRow, Summary, summarize
from calib_gateway.guards import can_read_capture_plan, can_view
from calib_gateway.library import runtime_of
from calib_infra.runtime import Runtime


async def _state(runtime: Runtime, observatory_id: str):
    now = runtime.now()
    frames = await runtime.frames.calibration_frames(observatory_id)
    frames += await runtime.frames.recent_lights(
        observatory_id, now - timedelta(days=LIGHT_WINDOW_DAYS)
    )
    masters = await runtime.frames.current_masters(observatory_id)
    jobs = await runtime.jobs.open_jobs(observatory_id)
    settings = await runtime.settings.get(observatory_id)
    return frames, masters, jobs, settings, now


class NeedsController(Controller):
    path = "/api/v1/calibration"

    @get("/summary/{observatory_id:str}", guards=[can_view])
    async def summary(self, request: Request, observatory_id: str) -> Summary:
        """Frame counts and current masters per camera and configuration."""
        runtime = runtime_of(request)
        counts = msgspec.convert(
            await runtime.frames.tally(observatory_id), list[CountRow], strict=False
        )
        masters = await runtime.frames.current_masters(observatory_id)
        return summarize(observatory_id, counts, masters, runtime.now())

    @get("/needs/{observatory_id:str}", guards=[can_view])
    async def needs(self, request: Request, observatory_id: str) -> Needs:
        """Uncovered configurations, accumulation progress, expiry warnings, deferred and
        active jobs."""
        return assess(observatory_id, *await _state(runtime_of(request), observatory_id))

    @get("/capture-plan/{observatory_id:str}", guards=[can_read_capture_plan])
    async def capture_plan(self, request: Request, observatory_id: str) -> CapturePlan:
        """What to capture next: per needed configuration the target, current and remaining
        frame counts. The observatory's plugin token may read it."""
        return capture_plan(observatory_id, *await _state(runtime_of(request), observatory_id))
