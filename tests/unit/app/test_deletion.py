"""Deleting frames and masters, finishing deletions cut short and deleting orphaned
objects (calib_app.deletion) over the fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.calibration import plan_for, with_calibration
from calib_app.deletion import delete_frame, delete_orphans, finish_pending, object_prefixes
from calib_core import events
from calib_core.models import CalibrationStatus, FrameType
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import cached_file, library_of, observatory, stored
from tests.unit.core import factories as make

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


async def orphans_deleted(world: FakeWorld, observatory_id: str | None) -> int:
    return await delete_orphans(
        library_of(world),
        observatory_id,
        world.now(),
        pending=world.pending_uploads,
        backlog=world.backlog,
    )


async def _master_of_three(world: FakeWorld):
    """A master dark stacked from three stored darks (claimed by it), with a preview."""
    sources = [await stored(world, make.frame(FrameType.DARK)) for _ in range(3)]
    master_id = make.next_id("m")
    master = await stored(
        world,
        make.master(
            FrameType.DARK,
            id=master_id,
            storage_key=f"masters/{make.OBS}/{master_id}.fits",
            preview_key=f"previews/{make.OBS}/{master_id}.png",
            components=[f.id for f in sources],
            n_frames=3,
        ),
    )
    await world.frames.claim([f.id for f in sources], master.id)
    return master, sources


async def test_a_deleted_source_frame_leaves_its_master_which_stays(world):
    await observatory(world)
    master, sources = await _master_of_three(world)

    await delete_frame(library_of(world), sources[0])

    assert await world.frames.get(sources[0].id) is None
    assert sources[0].storage_key not in world.store
    assert (await world.frames.get(master.id)).components == [f.id for f in sources[1:]]
    assert master.storage_key in world.store
    [deleted] = world.events.bodies(events.FRAME_DELETED)
    assert deleted == events.FrameDeleted(
        frame_id=sources[0].id, observatory_id=make.OBS, is_master=False
    )


async def test_a_deleted_master_holds_its_frames_and_drops_its_lights_calibrated_files(world):
    await observatory(world)
    master, sources = await _master_of_three(world)
    light = await stored(world, make.frame(FrameType.LIGHT))
    library = library_of(world)
    entry = await cached_file(world, light, (await plan_for(library, light)).signature)

    await delete_frame(library, master)

    assert await world.frames.get(master.id) is None
    assert master.storage_key not in world.store and master.preview_key not in world.store
    assert [
        (f.master_id, f.held, f.held_reason)
        for f in await world.frames.many([f.id for f in sources])
    ] == [(None, True, f"source of deleted master {master.id}")] * 3
    assert await world.cache.get(light.id) is None and entry.storage_key not in world.store
    assert (await with_calibration(library, light)).calibration_status == (
        CalibrationStatus.NO_MASTERS
    )
    assert world.events.kinds() == [events.CACHE_INVALIDATED, events.FRAME_DELETED]
    invalidated = world.events.published[0]
    assert invalidated.msg_id == f"cache-deleted-{master.id}"
    assert invalidated.body.master_ids == [master.id]


async def test_a_deleted_light_takes_its_calibrated_file_along(world):
    await observatory(world)
    light = await stored(world, make.frame(FrameType.LIGHT))
    entry = await cached_file(world, light, "s" * 64)

    await delete_frame(library_of(world), light)

    assert await world.frames.get(light.id) is None and light.storage_key not in world.store
    assert await world.cache.get(light.id) is None and entry.storage_key not in world.store


async def test_an_object_another_record_names_is_kept(world):
    await observatory(world)
    frame = await stored(world, make.frame(FrameType.DARK))
    twin = make.frame(FrameType.DARK, storage_key=frame.storage_key)
    await stored(world, twin, data=b"the twin's record")

    await delete_frame(library_of(world), frame)

    assert await world.frames.get(frame.id) is None
    assert frame.storage_key in world.store


async def test_deletions_cut_short_are_finished_once(world):
    """A crash after marking the records: one object still there, one already deleted; a
    cache entry marked too."""
    await observatory(world)
    lights = [await stored(world, make.frame(FrameType.LIGHT)) for _ in range(2)]
    entry = await cached_file(world, await stored(world, make.frame(FrameType.LIGHT)), "s" * 64)
    for light in lights:
        await world.frames.mark_deleting(light.id)
    await world.store.delete(lights[1].storage_key)
    await world.cache.mark_deleting(entry.id)
    library = library_of(world)

    assert await finish_pending(library, make.OBS) == 3

    assert await world.frames.many([f.id for f in lights]) == []
    assert [f.storage_key in world.store for f in lights] == [False, False]
    assert await world.cache.get(entry.id) is None and entry.storage_key not in world.store
    assert len(world.events.bodies(events.FRAME_DELETED)) == 2
    assert await finish_pending(library, make.OBS) == 0


async def test_a_deleting_master_is_no_longer_current(world):
    await observatory(world)
    master, _ = await _master_of_three(world)
    await world.frames.mark_deleting(master.id)
    assert await world.frames.current_masters(make.OBS) == []


async def test_objects_no_record_names_go_once_older_than_a_day(world):
    await observatory(world)
    named = await stored(world, make.frame(FrameType.LIGHT))
    await world.store.put_bytes(f"frames/{make.OBS}/never-announced.fits", b"orphan")
    await world.store.put_bytes(f"calibrated/{make.OBS}/forgotten.fits", b"orphan")
    await world.store.put_bytes("frames/another-obs/never-announced.fits", b"orphan")
    cached = await cached_file(world, named, "s" * 64)

    world.clock.advance(DAY - MINUTE)
    assert await orphans_deleted(world, make.OBS) == 0
    world.clock.advance(2 * MINUTE)
    assert await orphans_deleted(world, make.OBS) == 2

    assert sorted(world.store.objects) == sorted(
        [named.storage_key, cached.storage_key, "frames/another-obs/never-announced.fits"]
    )
    assert await orphans_deleted(world, None) == 1  # server-wide: every key
    assert sorted(world.store.objects) == sorted([named.storage_key, cached.storage_key])


def test_an_observatorys_objects_are_under_its_prefixes_and_all_of_them_server_wide():
    assert object_prefixes("o1") == ["frames/o1/", "masters/o1/", "previews/o1/", "calibrated/o1/"]
    assert object_prefixes(None) == [""]
