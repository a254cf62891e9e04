"""An observatory's summary, needs report and capture plan over the fakes: the state is
read once and handed to calib_core (whose rules tests/unit/core/test_needs.py and
test_summary.py check)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.needs import Inventory, capture_plan, needs_report, summary
from calib_core.models import FrameType, JobStatus
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import observatory, stored
from tests.unit.core import factories as make
from tests.unit.core.factories import OBS


def inventory_of(world: FakeWorld) -> Inventory:
    return Inventory(
        frames=world.frames, jobs=world.jobs, settings=world.settings, clock=world.clock
    )


@pytest.fixture
async def world() -> FakeWorld:
    world = FakeWorld()
    await observatory(world, min_frames_for_master=3)
    return world


async def test_the_summary_counts_frames_and_names_current_masters(world):
    for _ in range(2):
        await stored(world, make.frame(FrameType.DARK))
    master = await stored(world, make.master(FrameType.DARK))
    report = await summary(inventory_of(world), OBS)
    assert (report.total_frames, report.total_masters) == (2, 1)
    [camera] = report.cameras
    assert camera.frames["dark"] == 2 and camera.masters["active"] == 1
    assert camera.configurations[0].latest_master.id == master.id
    assert report.generated_at == world.now()


async def test_needs_see_recent_lights_open_jobs_and_settings(world):
    await stored(world, make.frame(FrameType.LIGHT, captured_at=world.now() - timedelta(days=1)))
    await stored(world, make.frame(FrameType.LIGHT, captured_at=world.now() - timedelta(days=31)))
    await stored(world, make.frame(FrameType.BIAS, exposure_s=0.0))
    await world.jobs.create(make.job(id="j1", status=JobStatus.QUEUED, observatory_id=OBS))
    report = await needs_report(inventory_of(world), OBS)
    [dark] = [n for n in report.uncovered_configurations if n.frame_type == FrameType.DARK]
    assert dark.light_count == 1  # the light of 31 days ago is out of the window
    [bias] = report.accumulation_progress
    assert (bias.count, bias.threshold) == (1, 3)
    assert [j.job_id for j in report.active_jobs] == ["j1"]


async def test_the_capture_plan_asks_for_what_the_lights_need(world):
    await stored(world, make.frame(FrameType.LIGHT, captured_at=world.now() - timedelta(days=1)))
    plan = await capture_plan(inventory_of(world), OBS)
    assert {(i.frame_type, i.remaining) for i in plan.items} == {
        (FrameType.DARK, 3),
        (FrameType.FLAT, 3),
    }
