"""The lifecycle service's handlers (calib_lifecycle.main.subscribe) under FastStream's
TestNatsBroker: its two ``master.created`` subscribers and its two request/reply subjects,
bound to the use cases over the fakes; and its numerics adapter on real FITS files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest
from astropy.io import fits
from faststream.nats import TestNatsBroker

from calib_app.ports import InvalidImageError
from calib_core import events
from calib_core.lifecycle import ExpiryReport, MaintenanceTask, RetentionReport
from calib_core.models import FrameType, MasterStatus
from calib_infra.config import Config
from calib_infra.rpc import LifecycleClient, RemoteError
from calib_infra.runtime import Runtime
from calib_lifecycle.main import subscribe
from calib_lifecycle.numerics import StackNumerics
from tests.unit.app.fakes import FakeLightCalibrator, FakeLog, FakeMasterDescriber, FakeWorld
from tests.unit.app.library_world import (
    calibration_of,
    library_of,
    maintenance_of,
    observatory,
    stored,
    uploaded_masters_of,
)
from tests.unit.core import factories as make

MASTER_CREATED = f"{events.MASTER_CREATED}.{make.OBS}"


@dataclass
class Lifecycle:
    world: FakeWorld
    calibrator: FakeLightCalibrator
    describer: FakeMasterDescriber
    broker: TestNatsBroker

    async def master_created(self, master_id: str) -> None:
        body = events.MasterCreated(master_id=master_id, observatory_id=make.OBS)
        await self.broker.publish(msgspec.json.encode(body), MASTER_CREATED)

    @property
    def client(self) -> LifecycleClient:
        return LifecycleClient(self.broker)


@pytest.fixture
async def lifecycle() -> AsyncIterator[Lifecycle]:
    """The lifecycle's handlers bound to the use cases over the fakes."""
    world, calibrator, describer = FakeWorld(), FakeLightCalibrator(), FakeMasterDescriber()
    runtime = Runtime("lifecycle", Config(service_instance="lifecycle-test"))
    runtime.log = FakeLog(world.log.records)  # the runtime's own log lines, kept
    subscribe(
        runtime,
        library=library_of(world),
        calibration=calibration_of(world, calibrator),
        uploaded=uploaded_masters_of(world, describer),
        maintenance=maintenance_of(world),
    )
    await observatory(world)
    try:
        async with TestNatsBroker(runtime.broker) as broker:
            yield Lifecycle(world, calibrator, describer, broker)
    finally:
        await runtime.mongo.close()


async def test_a_new_master_supersedes_and_an_uploaded_one_is_described(lifecycle):
    world = lifecycle.world
    old = await stored(world, make.master(FrameType.FLAT, created_at=world.now(), stats=None))
    world.clock.advance(60)
    uploaded = await stored(
        world, make.master(FrameType.FLAT, created_at=world.now(), stats=None), b"new flat"
    )

    await lifecycle.master_created(uploaded.id)

    old, uploaded = await world.frames.many([old.id, uploaded.id])
    assert (old.status, old.superseded_by) == (MasterStatus.SUPERSEDED, uploaded.id)
    assert uploaded.stats == {"median": 8.0} and uploaded.preview_key is not None
    assert lifecycle.describer.described == [FrameType.FLAT]  # only the one announced
    assert world.events.kinds() == [events.MASTER_SUPERSEDED]


async def test_a_redelivered_master_created_changes_nothing(lifecycle):
    world = lifecycle.world
    stacked = {"median": 1.0}
    await stored(world, make.master(FrameType.DARK, created_at=world.now(), stats=stacked))
    world.clock.advance(60)
    new = await stored(world, make.master(FrameType.DARK, created_at=world.now(), stats=stacked))
    await lifecycle.master_created(new.id)
    records = dict(world.frames.collection.documents)

    await lifecycle.master_created(new.id)

    assert dict(world.frames.collection.documents) == records
    assert world.events.kinds() == [events.MASTER_SUPERSEDED]
    assert lifecycle.describer.described == []  # a stacked master has its statistics


async def test_a_calibration_request_is_answered_with_the_cached_file(lifecycle):
    world = lifecycle.world
    await stored(world, make.master(FrameType.DARK))
    light = await stored(world, make.frame(FrameType.LIGHT))

    first = await lifecycle.client.calibrate(light.id)
    again = await lifecycle.client.calibrate(light.id)

    assert (first.status, first.computed, again.computed) == ("ready", True, False)
    assert again.storage_key == first.storage_key and first.storage_key in world.store
    assert len(lifecycle.calibrator.calls) == 1
    assert (await lifecycle.client.calibrate("no-such-light")).status == "not_found"


async def test_maintenance_requests_run_the_task_and_a_server_wide_run_is_recorded(lifecycle):
    world = lifecycle.world
    master = await stored(world, make.master(FrameType.DARK, created_at=world.now()))
    world.clock.advance(days=31)

    expiry = await lifecycle.client.maintenance(MaintenanceTask.EXPIRY_CHECK, None, ExpiryReport)
    retention = await lifecycle.client.maintenance(
        MaintenanceTask.RETENTION_CLEANUP, make.OBS, RetentionReport
    )

    assert (expiry.observatory_id, expiry.expired) == (None, 1)
    assert (await world.frames.get(master.id)).status == MasterStatus.EXPIRED
    assert await world.maintenance_runs.last_run("expiry-check") == expiry.finished_at
    assert retention.observatory_id == make.OBS
    assert await world.maintenance_runs.last_run("retention-cleanup") is None


async def test_a_request_that_fails_is_answered_with_the_reason(lifecycle, monkeypatch):
    async def down(observatory_id):
        raise ConnectionError("mongodb is down")

    monkeypatch.setattr(lifecycle.world.settings, "get", down)

    with pytest.raises(RemoteError, match="^ConnectionError: mongodb is down$"):
        await lifecycle.client.maintenance(MaintenanceTask.EXPIRY_CHECK, make.OBS, ExpiryReport)
    [failed] = lifecycle.world.log.find("request failed")
    assert failed.fields["subject"] == events.LIFECYCLE_MAINTENANCE


# ---- the numerics adapter -------------------------------------------------------------------


def fits_file(path: Path, value: float, **cards) -> Path:
    header = fits.Header()
    for keyword, card in cards.items():
        header[keyword] = card
    fits.writeto(path, np.full((6, 8), value, dtype=np.float32), header)
    return path


async def test_the_numerics_calibrate_a_light_with_the_scales_and_cards(tmp_path):
    light = fits_file(tmp_path / "light.fits", 100.0, IMAGETYP="LIGHT")
    output = tmp_path / "calibrated.fits"

    await StackNumerics().calibrate(
        light,
        output,
        bias=fits_file(tmp_path / "bias.fits", 10.0),
        dark=fits_file(tmp_path / "dark.fits", 0.5),  # a rate: 0.5 ADU/s
        flat=fits_file(tmp_path / "flat.fits", 2.0),  # an uploaded flat of median 2
        dark_scale=10.0,
        flat_scale=2.0,
        cards=[("CALDARK", "m1", "master dark used")],
    )

    with fits.open(output) as hdul:
        assert np.all(hdul[0].data == np.float32(85.0))  # (100 - 10 - 0.5 * 10) / (2 / 2)
        assert (hdul[0].header["IMAGETYP"], hdul[0].header["CALDARK"]) == ("LIGHT", "m1")


async def test_the_numerics_describe_a_master(tmp_path):
    master = fits_file(tmp_path / "master.fits", 1.0)

    description = await StackNumerics().describe(master, FrameType.FLAT)

    assert description.stats["median"] == 1.0
    assert description.preview_png.startswith(b"\x89PNG")


async def test_the_numerics_name_a_file_they_cannot_use(tmp_path):
    broken = tmp_path / "light.fits"
    broken.write_bytes(b"SIMPLE  = not a FITS file")
    master = fits_file(tmp_path / "dark.fits", 1.0)
    numerics = StackNumerics()

    with pytest.raises(InvalidImageError, match=str(broken)):
        await numerics.describe(broken, FrameType.DARK)
    with pytest.raises(InvalidImageError, match=str(broken)):
        await numerics.calibrate(
            broken,
            tmp_path / "out.fits",
            bias=None,
            dark=master,
            flat=None,
            dark_scale=1.0,
            flat_scale=1.0,
            cards=[],
        )
