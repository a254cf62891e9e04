"""The port bundles of the library, the lifecycle and the job queue over a
:class:`FakeWorld`, and frames stored in it with their files, for the unit tests of the
use cases of the lifecycle and scheduler services."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from calib_app.calibration import FrameLibrary, LightCalibration
from calib_app.dead_letters import DeadLetterOffice
from calib_app.lifecycle import UploadedMasters
from calib_app.maintenance import Maintenance
from calib_app.queueing import JobQueue
from calib_core.calibration import CACHE_READY, CacheEntry
from calib_core.models import Frame, Observatory
from calib_core.settings import CalibrationSettings
from tests.unit.app.fakes import FakeLightCalibrator, FakeMasterDescriber, FakeWorld
from tests.unit.core.factories import OBS


def library_of(world: FakeWorld) -> FrameLibrary:
    return FrameLibrary(
        frames=world.frames,
        settings=world.settings,
        cache=world.cache,
        store=world.store,
        events=world.events,
        clock=world.clock,
        log=world.log,
    )


def dead_letter_office_of(world: FakeWorld, max_deliveries: int = 10) -> DeadLetterOffice:
    return DeadLetterOffice(
        letters=world.dead_letters,
        bus=world.replays,
        clock=world.clock,
        log=world.log,
        max_deliveries=max_deliveries,
    )


def calibration_of(world: FakeWorld, calibrator: FakeLightCalibrator) -> LightCalibration:
    return LightCalibration(library=library_of(world), files=world.files, calibrator=calibrator)


def uploaded_masters_of(world: FakeWorld, describer: FakeMasterDescriber) -> UploadedMasters:
    return UploadedMasters(
        frames=world.frames,
        store=world.store,
        files=world.files,
        describer=describer,
        log=world.log,
    )


def maintenance_of(world: FakeWorld) -> Maintenance:
    return Maintenance(
        library=library_of(world),
        observatories=world.observatories,
        runs=world.maintenance_runs,
        pending_uploads=world.pending_uploads,
        backlog=world.backlog,
    )


def job_queue_of(world: FakeWorld) -> JobQueue:
    return JobQueue(
        frames=world.frames,
        jobs=world.jobs,
        settings=world.settings,
        events=world.events,
        clock=world.clock,
        log=world.log,
    )


async def observatory(world: FakeWorld, observatory_id: str = OBS, **settings: Any) -> str:
    """An observatory with these settings (defaults otherwise)."""
    await world.observatories.create(
        Observatory(id=observatory_id, name=observatory_id, created_at=world.now())
    )
    await world.settings.put(observatory_id, CalibrationSettings(**settings))
    return observatory_id


async def stored(world: FakeWorld, frame: Frame, data: bytes | None = None) -> Frame:
    """``frame`` recorded with its file in the bucket (its sha256 made that of the bytes,
    by default the frame's id) and, if it names one, its preview."""
    data = frame.id.encode() if data is None else data
    frame = msgspec.structs.replace(frame, sha256=hashlib.sha256(data).hexdigest())
    await world.store.put_bytes(frame.storage_key, data)
    if frame.preview_key:
        await world.store.put_bytes(frame.preview_key, b"png", content_type="image/png")
    assert await world.frames.insert(frame)
    return frame


async def cached_file(
    world: FakeWorld, light: Frame, signature: str, at: datetime | None = None
) -> CacheEntry:
    """A calibrated file of ``light`` in the cache, made for the plan ``signature``."""
    entry = CacheEntry(
        id=light.id,
        observatory_id=light.observatory_id,
        signature=signature,
        status=CACHE_READY,
        masters={},
        warnings=[],
        created_at=at or world.now(),
        storage_key=f"calibrated/{light.observatory_id}/{light.id}-{signature[:16]}.fits",
    )
    await world.store.put_bytes(entry.storage_key, b"calibrated")
    await world.cache.put(entry)
    return entry
