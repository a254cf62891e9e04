"""Calibration plans of stored lights, the calibrated-light cache and computing a
calibrated light (calib_app.calibration) over the fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.calibration import (
    calibrate,
    clear_cache,
    invalidate_stale,
    plan_for,
    with_calibration,
    with_calibrations,
)
from calib_core import events
from calib_core.calibration import CACHE_FAILED, cache_storage_key
from calib_core.models import CalibrationStatus, FrameType
from tests.unit.app.fakes import FakeLightCalibrator, FakeWorld
from tests.unit.app.library_world import (
    cached_file,
    calibration_of,
    library_of,
    observatory,
    stored,
)
from tests.unit.core import factories as make


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def calibrator() -> FakeLightCalibrator:
    return FakeLightCalibrator()


async def test_a_light_is_described_with_its_plan_and_other_frames_are_left_alone(world):
    await observatory(world)
    dark = await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))
    source = await stored(world, make.frame(FrameType.DARK))

    described, untouched = await with_calibrations(library_of(world), [light, source])
    assert described.calibration_status == CalibrationStatus.CALIBRATED
    assert described.calibration_masters == {"dark": dark.id}
    assert described.calibration_warnings == [
        "missing flat: no current master flat matches this light; dark-only calibration"
    ]
    assert untouched == source
    assert await with_calibration(library_of(world), source) == source


async def test_a_failed_computation_for_the_current_plan_shows_as_cal_failed(world, calibrator):
    await observatory(world)
    await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))
    calibrator.unreadable.add(light.id.encode())

    reply = await calibrate(calibration_of(world, calibrator), light.id)

    assert reply.status == "failed"
    view = await with_calibration(library_of(world), light)
    assert view.calibration_status == CalibrationStatus.CAL_FAILED
    assert view.calibration_error == reply.error


async def test_a_miss_computes_the_file_once_and_then_the_cache_answers(world, calibrator):
    await observatory(world)
    dark = await stored(world, make.master(FrameType.DARK))
    flat = await stored(world, make.master(FrameType.FLAT, stats={"median": 0.5}))
    light = await stored(world, make.frame(FrameType.LIGHT))
    calibration = calibration_of(world, calibrator)

    first = await calibrate(calibration, light.id)

    plan = await plan_for(library_of(world), light)
    key = cache_storage_key(light.observatory_id, light.id, plan.signature)
    assert (first.status, first.storage_key, first.computed) == ("ready", key, True)
    assert world.store.data(key) == b"calibrated:" + light.id.encode()
    [call] = calibrator.calls
    assert call.inputs == {
        "light": light.id.encode(),
        "dark": dark.id.encode(),
        "flat": flat.id.encode(),
    }
    assert (call.dark_scale, call.flat_scale) == (1.0, 0.5)  # CMOS; the flat's own median
    assert ("CALDARK", dark.id, "master dark used") in call.cards
    entry = await world.cache.get(light.id)
    assert (entry.signature, entry.size_bytes) == (plan.signature, len(world.store.data(key)))

    again = await calibrate(calibration, light.id)
    assert (again.status, again.storage_key, again.computed) == ("ready", key, False)
    assert len(calibrator.calls) == 1


async def test_on_ccd_the_bias_is_used_and_the_dark_rate_scaled_by_the_exposure(world, calibrator):
    await observatory(world, camera_type="CCD")
    settings = await world.settings.get(make.OBS)
    bias = await stored(world, make.master(FrameType.BIAS, exposure_s=0.0, settings=settings))
    dark = await stored(world, make.master(FrameType.DARK, exposure_s=10.0, settings=settings))
    light = await stored(world, make.frame(FrameType.LIGHT, exposure_s=120.0))

    assert (await calibrate(calibration_of(world, calibrator), light.id)).status == "ready"

    [call] = calibrator.calls
    assert call.inputs == {
        "light": light.id.encode(),
        "bias": bias.id.encode(),
        "dark": dark.id.encode(),
    }
    assert (call.dark_scale, call.flat_scale) == (120.0, 1.0)


async def test_an_entry_of_another_plan_or_whose_file_is_gone_is_replaced(world, calibrator):
    await observatory(world)
    await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))
    old = await cached_file(world, light, "a-plan-that-changed".ljust(64, "0"))
    calibration = calibration_of(world, calibrator)

    reply = await calibrate(calibration, light.id)

    assert (reply.status, reply.computed) == ("ready", True)
    assert old.storage_key not in world.store
    assert reply.storage_key in world.store

    await world.store.delete(reply.storage_key)  # lost from the bucket
    assert (await calibrate(calibration, light.id)).computed is True
    assert reply.storage_key in world.store
    assert len(calibrator.calls) == 2


@pytest.mark.parametrize("broken", ["light", "dark"])
async def test_an_unreadable_input_fails_the_light_naming_the_frame_and_is_remembered(
    world, calibrator, broken
):
    await observatory(world)
    dark = await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))
    culprit = {"light": light, "dark": dark}[broken]
    calibrator.unreadable.add(culprit.id.encode())
    calibration = calibration_of(world, calibrator)

    reply = await calibrate(calibration, light.id)

    assert (reply.status, reply.computed) == ("failed", True)
    assert reply.error == f"calibration failed: {broken} {culprit.id}: not a FITS file"
    entry = await world.cache.get(light.id)
    assert (entry.status, entry.storage_key) == (CACHE_FAILED, None)
    assert await calibrate(calibration, light.id) == events.CalibrateReply(
        status="failed", error=reply.error, computed=False
    )
    assert world.log.find("calibration failed", level="warning")


async def test_a_light_whose_file_changed_in_storage_fails(world, calibrator):
    await observatory(world)
    await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))
    await world.store.put_bytes(light.storage_key, b"something else")

    reply = await calibrate(calibration_of(world, calibrator), light.id)

    assert reply.status == "failed"
    assert reply.error.startswith(f"calibration failed: light {light.id}")
    assert calibrator.calls == []


async def test_what_cannot_be_calibrated_is_answered_without_computing(world, calibrator):
    await observatory(world)
    light = await stored(world, make.frame(FrameType.LIGHT))
    dark_source = await stored(world, make.frame(FrameType.DARK))
    calibration = calibration_of(world, calibrator)

    assert (await calibrate(calibration, "no-such-frame")).status == "not_found"
    assert (await calibrate(calibration, dark_source.id)).status == "not_found"
    no_masters = await calibrate(calibration, light.id)
    assert no_masters.status == "no_masters"
    assert no_masters.error.startswith("no current master dark matches this light")

    await stored(world, make.master(FrameType.DARK, width=32))
    other_size = await calibrate(calibration, light.id)
    assert (other_size.status, other_size.computed) == ("failed", False)
    assert "is 32x48, the light is 64x48" in other_size.error
    assert calibrator.calls == [] and await world.cache.entries() == []


async def test_only_entries_whose_plan_changed_are_invalidated(world):
    await observatory(world)
    dark = await stored(world, make.master(FrameType.DARK))
    library = library_of(world)
    kept_light = await stored(world, make.frame(FrameType.LIGHT))
    kept = await cached_file(world, kept_light, (await plan_for(library, kept_light)).signature)
    stale_light = await stored(world, make.frame(FrameType.LIGHT))
    stale = await cached_file(world, stale_light, "an-old-plan".ljust(64, "0"))

    count = await invalidate_stale(library, make.OBS, because_of=[dark.id], msg_id="cache-x")

    assert count == 1
    assert [e.id for e in await world.cache.entries()] == [kept.id]
    assert stale.storage_key not in world.store and kept.storage_key in world.store
    [published] = [m for m in world.events.published if m.kind == events.CACHE_INVALIDATED]
    assert published.msg_id == "cache-x"
    assert published.body == events.CacheInvalidated(
        observatory_id=make.OBS, master_ids=[dark.id], entries=1
    )
    assert await invalidate_stale(library, make.OBS, because_of=[dark.id], msg_id="y") == 0
    assert len(world.events.published) == 1


async def test_clearing_drops_every_entry_and_tells_each_observatory(world):
    first = await observatory(world, "obs-a")
    second = await observatory(world, "obs-b")
    for obs in (first, first, second):
        light = await stored(world, make.frame(FrameType.LIGHT, observatory_id=obs))
        await cached_file(world, light, "s" * 64)

    assert await clear_cache(library_of(world), None, "req1") == 3

    assert await world.cache.entries() == []
    assert [key for key in world.store.objects if key.startswith("calibrated/")] == []
    assert {(m.body.observatory_id, m.body.entries, m.msg_id) for m in world.events.published} == {
        (first, 2, f"cache-clear-req1-{first}"),
        (second, 1, f"cache-clear-req1-{second}"),
    }
    assert await clear_cache(library_of(world), first, "req2") == 0


async def test_an_entry_made_just_before_a_master_expired_is_stale(world):
    """The plan names its warnings, so an expiry (a stale-master warning) changes it."""
    await observatory(world)
    dark = await stored(
        world, make.master(FrameType.DARK, created_at=make.NOW - timedelta(days=29))
    )
    light = await stored(world, make.frame(FrameType.LIGHT))
    library = library_of(world)
    await cached_file(world, light, (await plan_for(library, light)).signature)

    world.clock.advance(days=2)

    assert await invalidate_stale(library, make.OBS, because_of=[dark.id], msg_id="m") == 1
