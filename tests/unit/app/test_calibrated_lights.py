"""Where a light's calibrated file comes from, over the fakes: the cache while it holds
one for the light's plan, else the lifecycle service; refusals by their code."""

from __future__ import annotations

import pytest

from calib_app.calibrated_lights import NotCalibratedError, calibrated_file
from calib_app.calibration import calibrate
from calib_app.errors import NotFoundError
from calib_core import events
from calib_core.models import FrameType
from tests.unit.app.fakes import FakeLifecycleService, FakeLightCalibrator, FakeWorld
from tests.unit.app.library_world import calibration_of, library_of, stored
from tests.unit.core import factories as make


class Lifecycle(FakeLifecycleService):
    """Calibrates over the world, or answers ``reply`` when one is set."""

    def __init__(self, world: FakeWorld, calibrator: FakeLightCalibrator):
        async def answer(frame_id: str) -> events.CalibrateReply:
            return self.reply or await calibrate(calibration_of(world, calibrator), frame_id)

        super().__init__(answer, maintain=None)
        self.reply: events.CalibrateReply | None = None


@pytest.fixture
def calibrator() -> FakeLightCalibrator:
    return FakeLightCalibrator()


@pytest.fixture
def lifecycle(world, calibrator) -> Lifecycle:
    return Lifecycle(world, calibrator)


async def test_computed_once_then_served_from_the_cache(world, calibrator, lifecycle):
    await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))
    first = await calibrated_file(library_of(world), lifecycle, light)
    assert not first.from_cache and len(lifecycle.requests) == 1
    assert world.store.data(first.storage_key) == b"calibrated:" + light.id.encode()
    again = await calibrated_file(library_of(world), lifecycle, light)
    assert again == type(first)(storage_key=first.storage_key, from_cache=True)
    assert len(lifecycle.requests) == 1 and len(calibrator.calls) == 1


async def test_a_light_without_masters_is_refused_without_asking(world, lifecycle):
    light = await stored(world, make.frame(FrameType.LIGHT))
    with pytest.raises(NotCalibratedError, match="no current master dark") as refused:
        await calibrated_file(library_of(world), lifecycle, light)
    assert refused.value.code == "no_masters" and lifecycle.requests == []


async def test_a_failed_calibration_is_remembered_for_the_plan(world, calibrator, lifecycle):
    await stored(world, make.master(FrameType.DARK), data=b"broken")
    light = await stored(world, make.frame(FrameType.LIGHT))
    calibrator.unreadable.add(b"broken")
    for _ in range(2):
        with pytest.raises(NotCalibratedError, match="calibration failed") as refused:
            await calibrated_file(library_of(world), lifecycle, light)
        assert refused.value.code == "cal_failed"
    assert len(lifecycle.requests) == 1


@pytest.mark.parametrize(
    ("reply", "refusal", "code"),
    [
        (events.CalibrateReply(status="not_found", error="gone"), NotFoundError, None),
        (
            events.CalibrateReply(status="no_masters", error="superseded"),
            NotCalibratedError,
            "no_masters",
        ),
        (events.CalibrateReply(status="failed"), NotCalibratedError, "cal_failed"),
    ],
)
async def test_the_lifecycle_services_refusals(world, lifecycle, reply, refusal, code):
    await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))
    lifecycle.reply = reply
    with pytest.raises(refusal) as refused:
        await calibrated_file(library_of(world), lifecycle, light)
    assert getattr(refused.value, "code", None) == code


async def test_only_lights_are_calibrated(world, lifecycle):
    master = await stored(world, make.master(FrameType.DARK))
    with pytest.raises(NotFoundError, match="is not a light: only lights are calibrated"):
        await calibrated_file(library_of(world), lifecycle, master)
