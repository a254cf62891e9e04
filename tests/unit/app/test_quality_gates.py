"""The quality gates in a stacking job (calib_app.stacking over the fakes and the real
numerics): a failing frame is held with its reason and the master is made of the rest."""

from __future__ import annotations

import numpy as np
import pytest

from calib_app.stacking import run_job
from calib_core.models import JobStatus, JobTrigger
from calib_core.settings import CalibrationSettings
from calib_stack import synthetic
from calib_stacker.numerics import ThreadedMasterBuilder
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.test_stacking import (
    CAMERA,
    LEASE_S,
    MIN_FRAMES,
    dark_data,
    queue,
    stacked,
    stacking_of,
    store_darks,
    store_flats,
    store_frame,
)


def light_leak_dark(index: int, leak_adu: float) -> bytes:
    """A dark of :data:`CAMERA` with ``leak_adu`` of light over the whole frame."""
    rng = np.random.default_rng(77 + index)
    image = synthetic.dark_frame(
        CAMERA, exposure_s=60.0, temperature_c=-10.0, rng=rng, cosmic_rays=False
    )
    return synthetic.fits_bytes(image.astype(np.float64) + leak_adu, None)


async def test_a_light_leak_dark_is_held_and_the_master_is_made_of_the_others():
    world = FakeWorld()
    good = await store_darks(world, [60.0] * MIN_FRAMES)
    leak = await store_frame(
        world, light_leak_dark(0, 3000.0), "dark", exposure_s=60.0, temperature_c=-10.0
    )
    job, master = await stacked(world, [*good, leak])

    assert job.status == JobStatus.SUCCEEDED
    assert sorted(master.components) == sorted(f.id for f in good) and master.n_frames == 5
    held = await world.frames.get(leak.id)
    assert held.held and held.master_id is None
    assert held.held_reason.startswith("dark level gate: median ")
    assert "robust sigmas from the group's" in held.held_reason and "limit 5" in held.held_reason
    assert not any(f.held for f in await world.frames.many([f.id for f in good]))


class ProcessDied(Exception):
    """The replica's process ends here (the test stands in for a SIGKILL)."""


class DyingBuilder(ThreadedMasterBuilder):
    """Measures the frames (so the gates hold), then dies before stacking."""

    async def stack(self, *args, **kwargs):
        raise ProcessDied


async def test_a_replica_that_died_after_holding_a_frame_leaves_the_rest_to_the_next_attempt():
    """Holding is idempotent and durable: the redelivered job, taken over once the dead
    replica's claim runs out, skips the held frame and makes the master of the others."""
    world = FakeWorld()
    good = await store_darks(world, [60.0] * MIN_FRAMES)
    leak = await store_frame(
        world, light_leak_dark(0, 3000.0), "dark", exposure_s=60.0, temperature_c=-10.0
    )
    job = await queue(world, [*good, leak])
    dying = stacking_of(world, builder=DyingBuilder(memory_limit_mb=64), worker="dead-replica")
    with pytest.raises(ProcessDied):
        await run_job(dying, job.id)
    reason = (await world.frames.get(leak.id)).held_reason
    assert reason.startswith("dark level gate: ")
    assert (await world.jobs.get(job.id)).status == JobStatus.RUNNING
    assert await world.frames.masters(job.observatory_id) == []

    world.clock.advance(seconds=LEASE_S + 1)  # the dead replica's claim has run out
    await run_job(stacking_of(world), job.id)
    done = await world.jobs.get(job.id)
    assert done.status == JobStatus.SUCCEEDED and done.attempts == 2
    master = await world.frames.get(done.master_id)
    assert sorted(master.components) == sorted(f.id for f in good)
    still_held = await world.frames.get(leak.id)
    assert still_held.held and still_held.held_reason == reason and still_held.master_id is None


async def test_gates_off_stack_the_light_leak_dark_too():
    world = FakeWorld()
    frames = [*await store_darks(world, [60.0] * MIN_FRAMES)]
    frames.append(
        await store_frame(
            world, light_leak_dark(0, 3000.0), "dark", exposure_s=60.0, temperature_c=-10.0
        )
    )
    _, master = await stacked(world, frames, CalibrationSettings(quality_gates_enabled=False))
    assert master.n_frames == 6
    assert not any(f.held for f in await world.frames.many([f.id for f in frames]))


async def test_a_frame_of_another_size_is_held_by_the_shape_gate():
    world = FakeWorld()
    small = synthetic.Camera(name=CAMERA.name, width=32, height=24)
    frames = await store_darks(world, [60.0] * MIN_FRAMES)
    odd = await store_frame(
        world, dark_data(9, exposure_s=60.0, temperature_c=-10.0, camera=small), "dark"
    )
    _, master = await stacked(world, [*frames, odd])
    assert master.n_frames == MIN_FRAMES
    held = await world.frames.get(odd.id)
    assert held.held_reason == (
        f"shape gate: frame is 32x24, the group's frames are {CAMERA.width}x{CAMERA.height}"
    )


async def test_a_saturated_flat_is_held():
    world = FakeWorld()
    darks = await store_darks(world, [2.0] * MIN_FRAMES, seed=2)
    await stacked(world, darks)
    flats = await store_flats(world, MIN_FRAMES, exposure_s=2.0, temperature_c=-10.0, level_adu=5e3)
    [burnt] = await store_flats(world, 1, exposure_s=2.0, temperature_c=-10.0, level_adu=9e4)
    job, master = await stacked(world, [*flats, burnt])

    assert job.status == JobStatus.SUCCEEDED and master.n_frames == MIN_FRAMES
    reason = (await world.frames.get(burnt.id)).held_reason
    assert reason.startswith("saturation gate: ") and "limit 0.1%" in reason


async def test_an_automatic_job_left_with_too_few_frames_fails_saying_so():
    world = FakeWorld()
    good = await store_darks(world, [60.0] * (MIN_FRAMES - 1))
    leak = await store_frame(
        world, light_leak_dark(0, 3000.0), "dark", exposure_s=60.0, temperature_c=-10.0
    )
    settings = CalibrationSettings(min_frames_for_master=MIN_FRAMES)
    job = await queue(world, [*good, leak], settings, trigger=JobTrigger.SWEEP)
    await run_job(stacking_of(world), job.id)

    failed = await world.jobs.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert failed.error == (
        "the quality gates held 1 of 5 frames (see the held frames); 4 remain, 5 needed"
    )
    assert (await world.frames.get(leak.id)).held
    assert await world.frames.masters(job.observatory_id) == []
