"""CMOS flats of several exposures in one job (calib_app.stacking over the fakes and the
real numerics): each flat loses the master dark of its own exposure; flats whose exposure
has no master dark wait, and a job left with too few is deferred naming the exposure."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clip

from calib_core.matching import missing_darks_reason
from calib_core.models import JobStatus
from calib_core.settings import CalibrationSettings
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.test_stacking import (
    MIN_FRAMES,
    read_master,
    stacked,
    store_darks,
    store_flats,
)

SETTINGS = CalibrationSettings(min_frames_for_master=MIN_FRAMES)


def pixels(world: FakeWorld, frame) -> np.ndarray:
    with fits.open(io.BytesIO(world.store.data(frame.storage_key))) as hdul:
        return hdul[0].data.astype(np.float32)


async def test_each_flat_loses_the_dark_of_its_own_exposure():
    world = FakeWorld()
    _, short_dark = await stacked(world, await store_darks(world, [1.0] * 3, seed=5))
    _, long_dark = await stacked(world, await store_darks(world, [20.0] * 3, seed=6))
    short = await store_flats(world, 3, exposure_s=1.0, temperature_c=-10.0, level_adu=8000)
    long = await store_flats(world, 3, exposure_s=20.0, temperature_c=-10.0, level_adu=8000)
    job, master = await stacked(world, [*short, *long], SETTINGS)

    assert job.status == JobStatus.SUCCEEDED and master.n_frames == 6
    header, image = read_master(world, master)
    assert header["CALPRE"] == ",".join(sorted([short_dark.id, long_dark.id]))
    darks = {1.0: read_master(world, short_dark)[1], 20.0: read_master(world, long_dark)[1]}
    corrected = []
    for flat in [*short, *long]:
        frame = pixels(world, flat) - darks[flat.exposure_s]
        corrected.append(frame / np.float32(np.median(frame)))
    expected = sigma_clip(
        np.stack(corrected), sigma=3.0, maxiters=5, axis=0, cenfunc="median", stdfunc="std"
    ).mean(axis=0)
    expected = np.asarray(expected, dtype=np.float32)
    expected /= np.median(expected)
    np.testing.assert_allclose(image, expected, rtol=1e-5)


async def test_flats_of_an_exposure_without_a_dark_wait_while_the_others_are_stacked():
    world = FakeWorld()
    _, dark = await stacked(world, await store_darks(world, [1.0] * 3, seed=5))
    ready = await store_flats(world, MIN_FRAMES, exposure_s=1.0, temperature_c=-10.0, level_adu=8e3)
    waiting = await store_flats(world, 2, exposure_s=3.0, temperature_c=-10.0, level_adu=8e3)
    job, master = await stacked(world, [*ready, *waiting], SETTINGS)

    assert job.status == JobStatus.SUCCEEDED
    assert sorted(master.components) == sorted(f.id for f in ready)
    assert [f.master_id for f in await world.frames.many([f.id for f in waiting])] == [None] * 2
    assert world.log.find("flats without a master dark wait")[0].fields["exposures_s"] == [3.0]


@pytest.mark.parametrize("ready_count", [0, 2])
async def test_too_few_flats_with_a_dark_defer_the_job_naming_the_missing_exposures(ready_count):
    world = FakeWorld()
    await stacked(world, await store_darks(world, [1.0] * 3, seed=5))
    ready = await store_flats(
        world, ready_count, exposure_s=1.0, temperature_c=-10.0, level_adu=8e3
    )
    waiting = await store_flats(world, 3, exposure_s=3.0, temperature_c=-10.0, level_adu=8e3)
    waiting += await store_flats(world, 1, exposure_s=7.4, temperature_c=-10.0, level_adu=8e3)
    job, master = await stacked(world, [*ready, *waiting], SETTINGS)

    assert master is None and job.status == JobStatus.DEFERRED
    assert job.deferred_reason == missing_darks_reason([3.0, 7.0])
    assert job.deferred_reason == (
        "Flat auto-stacking deferred: no matching master dark available (flat exposure 3 s, 7 s)"
    )
