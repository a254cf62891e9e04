"""What an observatory holds and lacks (SPEC §8–§9): its summary, its needs report and
its capture plan. The repositories load the state once; ``calib_core`` decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from calib_app.ports import Clock, FrameRepository, JobRepository, SettingsRepository
from calib_core import needs
from calib_core.models import Frame, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.summary import CountRow, Summary, summarize


@dataclass(frozen=True)
class Inventory:
    frames: FrameRepository
    jobs: JobRepository
    settings: SettingsRepository
    clock: Clock


@dataclass(frozen=True)
class _Holdings:
    """An observatory's frames (calibration frames and recent lights), current masters,
    open jobs and settings, at ``now``."""

    frames: list[Frame]
    masters: list[Frame]
    jobs: list[StackJob]
    settings: CalibrationSettings
    now: datetime


async def _holdings(inventory: Inventory, observatory_id: str) -> _Holdings:
    now = inventory.clock.now()
    frames = await inventory.frames.calibration_frames(observatory_id)
    frames += await inventory.frames.recent_lights(
        observatory_id, now - timedelta(days=needs.LIGHT_WINDOW_DAYS)
    )
    return _Holdings(
        frames=frames,
        masters=await inventory.frames.current_masters(observatory_id),
        jobs=await inventory.jobs.open_jobs(observatory_id),
        settings=await inventory.settings.get(observatory_id),
        now=now,
    )


async def summary(inventory: Inventory, observatory_id: str) -> Summary:
    """Frame counts and current masters per camera and configuration."""
    counts = msgspec.convert(
        await inventory.frames.tally(observatory_id), list[CountRow], strict=False
    )
    masters = await inventory.frames.current_masters(observatory_id)
    return summarize(observatory_id, counts, masters, inventory.clock.now())


async def needs_report(inventory: Inventory, observatory_id: str) -> needs.Needs:
    held = await _holdings(inventory, observatory_id)
    return needs.assess(
        observatory_id, held.frames, held.masters, held.jobs, held.settings, held.now
    )


async def capture_plan(inventory: Inventory, observatory_id: str) -> needs.CapturePlan:
    held = await _holdings(inventory, observatory_id)
    return needs.capture_plan(
        observatory_id, held.frames, held.masters, held.jobs, held.settings, held.now
    )
