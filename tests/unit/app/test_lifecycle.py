"""What follows a new master in the lifecycle service (calib_app.lifecycle) over the fakes:
supersession and the description of uploaded masters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.calibration import plan_for
from calib_app.lifecycle import describe_uploaded_master, supersede
from calib_core import events
from calib_core.masters import preview_storage_key
from calib_core.models import FrameType, MasterStatus
from tests.unit.app.fakes import FakeMasterDescriber, FakeWorld
from tests.unit.app.library_world import (
    cached_file,
    library_of,
    observatory,
    stored,
    uploaded_masters_of,
)
from tests.unit.core import factories as make

HOUR = timedelta(hours=1)


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


async def dark_master(world: FakeWorld, hours_old: float, temperature_c: float = -10.0, **fields):
    return await stored(
        world,
        make.master(
            FrameType.DARK,
            created_at=world.now() - hours_old * HOUR,
            temperature_c=temperature_c,
            **fields,
        ),
    )


def statuses(*frames) -> list[MasterStatus]:
    return [f.status for f in frames]


async def test_a_new_master_supersedes_the_current_one_and_others_coexist(world):
    await observatory(world)
    old = await dark_master(world, 48)
    expired = await dark_master(world, 47, temperature_c=-10.5, status=MasterStatus.EXPIRED)
    cold = await dark_master(world, 46, temperature_c=-20.0)
    new = await dark_master(world, 1)
    source = await stored(world, make.frame(FrameType.DARK))
    await world.frames.claim([source.id], old.id)  # a frame the new master did not take

    await supersede(library_of(world), new.id)

    old, expired, cold, new = await world.frames.many([old.id, expired.id, cold.id, new.id])
    assert statuses(old, expired, cold, new) == [
        MasterStatus.SUPERSEDED,
        MasterStatus.SUPERSEDED,
        MasterStatus.ACTIVE,  # -20 °C is not replaced by a -10 °C master
        MasterStatus.ACTIVE,
    ]
    assert (old.superseded_by, old.superseded_at) == (new.id, world.now())
    assert (await world.frames.get(source.id)).master_id is None
    assert sorted(world.events.bodies(events.MASTER_SUPERSEDED), key=lambda e: e.master_id) == [
        events.MasterSuperseded(master_id=m.id, observatory_id=make.OBS, superseded_by=new.id)
        for m in sorted([old, expired], key=lambda m: m.id)
    ]


async def test_a_redelivered_master_created_changes_nothing_and_publishes_nothing_new(world):
    await observatory(world)
    old = await dark_master(world, 48)
    new = await dark_master(world, 1)
    library = library_of(world)
    await supersede(library, new.id)
    records = dict(world.frames.collection.documents)
    published = list(world.events.published)
    world.clock.advance(HOUR)

    await supersede(library, new.id)

    assert dict(world.frames.collection.documents) == records
    assert world.events.published == published
    assert [m.msg_id for m in world.events.duplicates] == [f"superseded-{old.id}"]


async def test_a_master_recorded_after_a_newer_one_is_itself_superseded(world):
    await observatory(world)
    newer = await dark_master(world, 1)
    late = await dark_master(world, 2)  # its master.created handled last

    await supersede(library_of(world), late.id)

    late, newer = await world.frames.many([late.id, newer.id])
    assert (late.status, late.superseded_by) == (MasterStatus.SUPERSEDED, newer.id)
    assert newer.status == MasterStatus.ACTIVE
    [superseded] = world.events.bodies(events.MASTER_SUPERSEDED)
    assert (superseded.master_id, superseded.superseded_by) == (late.id, newer.id)


async def test_the_bookkeeping_a_crash_left_undone_is_finished(world):
    """Superseded, then a crash before the claims were released and the event published."""
    await observatory(world)
    old = await dark_master(world, 48)
    new = await dark_master(world, 1)
    source = await stored(world, make.frame(FrameType.DARK))
    await world.frames.claim([source.id], old.id)
    await world.frames.supersede(old.id, new.id, world.now())

    await supersede(library_of(world), new.id)

    assert (await world.frames.get(source.id)).master_id is None
    [superseded] = world.events.bodies(events.MASTER_SUPERSEDED)
    assert superseded.master_id == old.id


async def test_calibrated_files_of_the_replaced_master_are_invalidated(world):
    await observatory(world)
    old = await dark_master(world, 48)
    light = await stored(world, make.frame(FrameType.LIGHT))
    library = library_of(world)
    entry = await cached_file(world, light, (await plan_for(library, light)).signature)
    other = await stored(world, make.frame(FrameType.LIGHT, exposure_s=5.0))  # no master: kept
    kept = await cached_file(world, other, (await plan_for(library, other)).signature)
    new = await dark_master(world, 1)

    await supersede(library, new.id)

    assert await world.cache.get(light.id) is None and entry.storage_key not in world.store
    assert (await world.cache.get(other.id)).signature == kept.signature
    [invalidated] = [m for m in world.events.published if m.kind == events.CACHE_INVALIDATED]
    assert invalidated.msg_id == f"cache-created-{new.id}"
    assert invalidated.body == events.CacheInvalidated(
        observatory_id=make.OBS, master_ids=[old.id], entries=1
    )


async def test_a_first_master_invalidates_entries_made_without_it(world):
    await observatory(world)
    light = await stored(world, make.frame(FrameType.LIGHT))
    await cached_file(world, light, "a-plan-without-a-dark".ljust(64, "0"))
    new = await dark_master(world, 1)

    await supersede(library_of(world), new.id)

    assert await world.cache.get(light.id) is None
    [invalidated] = world.events.bodies(events.CACHE_INVALIDATED)
    assert invalidated.master_ids == [new.id]


async def test_what_is_not_a_master_is_ignored(world):
    await observatory(world)
    source = await stored(world, make.frame(FrameType.DARK))
    library = library_of(world)

    await supersede(library, source.id)
    await supersede(library, "no-such-master")

    assert world.events.published == []


# ---- uploaded masters -----------------------------------------------------------------------


@pytest.fixture
def describer() -> FakeMasterDescriber:
    return FakeMasterDescriber()


async def test_an_uploaded_master_gets_its_statistics_and_a_preview(world, describer):
    await observatory(world)
    master = await stored(world, make.master(FrameType.FLAT, stats=None), data=b"flat bytes")

    await describe_uploaded_master(uploaded_masters_of(world, describer), master.id)

    described = await world.frames.get(master.id)
    key = preview_storage_key(make.OBS, master.id)
    assert (described.stats, described.preview_key) == ({"median": 10.0}, key)
    assert world.store.data(key) == b"png of flat bytes"
    assert world.store.objects[key].content_type == "image/png"
    assert describer.described == [FrameType.FLAT]


async def test_a_described_master_and_what_is_not_a_master_are_left_alone(world, describer):
    await observatory(world)
    stacked = await stored(world, make.master(FrameType.DARK, stats={"median": 100.0}))
    source = await stored(world, make.frame(FrameType.DARK))
    masters = uploaded_masters_of(world, describer)

    for frame_id in (stacked.id, source.id, "no-such-master"):
        await describe_uploaded_master(masters, frame_id)

    assert describer.described == [] and world.files.fetches == []
    assert (await world.frames.get(stacked.id)).stats == {"median": 100.0}


@pytest.mark.parametrize("damage", ["unreadable", "missing"])
async def test_an_uploaded_master_that_cannot_be_read_stays_undescribed(world, describer, damage):
    await observatory(world)
    master = await stored(world, make.master(FrameType.DARK, stats=None), data=b"not fits")
    if damage == "unreadable":
        describer.unreadable.add(b"not fits")
    else:
        await world.store.delete(master.storage_key)

    await describe_uploaded_master(uploaded_masters_of(world, describer), master.id)

    assert (await world.frames.get(master.id)).stats is None
    assert not any(key.startswith("previews/") for key in world.store.objects)
    [warning] = world.log.find("uploaded master cannot be described", level="warning")
    assert warning.fields["master_id"] == master.id
