"""Presigned uploads over the fakes (calib_app.presigned): a new key under the
observatory's ``frames/``, signed for 15 minutes, recorded as pending before its URL
exists; and the retention cleanup, which keeps what pending uploads and unhandled
registrations name and removes pending uploads once they are over."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.errors import NotFoundError
from calib_app.maintenance import retention_cleanup
from calib_app.presigned import PresignedUploads, start_upload
from calib_core.presigned import PENDING_UPLOAD_GRACE, UPLOAD_URL_LIFETIME
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import maintenance_of, observatory
from tests.unit.core.factories import OBS

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def presigned_of(world: FakeWorld) -> PresignedUploads:
    return PresignedUploads(
        observatories=world.observatories,
        pending=world.pending_uploads,
        store=world.store,
        clock=world.clock,
        log=world.log,
    )


async def test_an_upload_gets_a_new_safe_key_a_url_and_a_pending_record(world):
    ticket = await start_upload(presigned_of(world), OBS, "../../Dark 001.fits")
    prefix, unique, name = ticket.storage_key.rsplit("/", 2)
    assert (prefix, name) == (f"frames/{OBS}", "Dark_001.fits") and len(unique) == 32
    assert ticket.expires_at == world.now() + UPLOAD_URL_LIFETIME
    assert world.store.signed == [(ticket.storage_key, UPLOAD_URL_LIFETIME)]
    assert ticket.upload_url.startswith(f"https://s3.fake/bucket/{ticket.storage_key}?")
    pending = await world.pending_uploads.get(ticket.storage_key)
    assert (pending.observatory_id, pending.created_at) == (OBS, world.now())
    assert pending.expires_at == ticket.expires_at
    assert world.log.find("upload url issued")[0].fields["storage_key"] == ticket.storage_key
    assert ticket.storage_key not in world.store  # nothing is stored until the plugin PUTs


async def test_two_uploads_of_one_name_get_two_keys(world):
    first = await start_upload(presigned_of(world), OBS, "dark.fits")
    second = await start_upload(presigned_of(world), OBS, "dark.fits")
    assert first.storage_key != second.storage_key


async def test_an_unknown_observatory_gets_nothing(world):
    with pytest.raises(NotFoundError, match="observatory 'nowhere' not found"):
        await start_upload(presigned_of(world), "nowhere", "dark.fits")
    assert world.store.signed == [] and world.pending_uploads.collection.documents == {}


async def test_a_pending_uploads_object_is_kept_however_old_until_the_upload_is_over(world):
    """The bucket's clock (or the uploader's) may be days off: the object of an upload
    still pending is kept whatever age it seems to have."""
    maintenance = maintenance_of(world)
    ticket = await start_upload(presigned_of(world), OBS, "dark.fits")
    now = world.now()
    world.clock.set(now - 2 * DAY)  # the bucket stamps the object two days "ago"
    await world.store.put_bytes(ticket.storage_key, b"SIMPLE")
    world.clock.set(now)
    report = await retention_cleanup(maintenance, OBS)
    assert (report.orphans_deleted, report.pending_uploads_removed) == (0, 0)
    assert ticket.storage_key in world.store

    world.clock.set(ticket.expires_at + PENDING_UPLOAD_GRACE)  # still within the grace
    report = await retention_cleanup(maintenance, OBS)
    assert (report.orphans_deleted, report.pending_uploads_removed) == (0, 0)

    world.clock.advance(SECOND)  # over: never announced, the object is an orphan
    report = await retention_cleanup(maintenance, OBS)
    assert (report.orphans_deleted, report.pending_uploads_removed) == (1, 1)
    assert ticket.storage_key not in world.store
    assert await world.pending_uploads.get(ticket.storage_key) is None


async def test_an_announced_object_is_kept_until_the_registry_has_handled_its_event(world):
    maintenance = maintenance_of(world)
    key = f"frames/{OBS}/announced.fits"
    await world.store.put_bytes(key, b"SIMPLE")
    world.backlog.announce(OBS, key)
    world.clock.advance(3 * DAY)  # the registry has been down for days
    assert (await retention_cleanup(maintenance, OBS)).orphans_deleted == 0
    assert (await retention_cleanup(maintenance, None)).orphans_deleted == 0
    assert key in world.store

    world.backlog.unhandled.clear()  # handled: rejected, say, so no record names it
    assert (await retention_cleanup(maintenance, OBS)).orphans_deleted == 1
    assert key not in world.store


async def test_while_the_backlog_cannot_be_read_nothing_under_frames_goes(world):
    maintenance = maintenance_of(world)
    frame_key, master_key = f"frames/{OBS}/lost.fits", f"masters/{OBS}/lost.fits"
    await world.store.put_bytes(frame_key, b"SIMPLE")
    await world.store.put_bytes(master_key, b"SIMPLE")
    world.backlog.readable = False
    world.clock.advance(2 * DAY)
    assert (await retention_cleanup(maintenance, None)).orphans_deleted == 1
    assert frame_key in world.store and master_key not in world.store
    assert world.log.find("orphans under frames/ kept: the unhandled events cannot be read now")

    world.backlog.readable = True
    assert (await retention_cleanup(maintenance, OBS)).orphans_deleted == 1
    assert frame_key not in world.store


async def test_expired_uploads_are_removed_per_observatory_or_all(world):
    other = await observatory(world, "obs-2")
    presigned = presigned_of(world)
    mine = await start_upload(presigned, OBS, "a.fits")
    theirs = await start_upload(presigned, other, "b.fits")
    world.clock.advance(UPLOAD_URL_LIFETIME + PENDING_UPLOAD_GRACE + SECOND)
    fresh = await start_upload(presigned, OBS, "c.fits")

    assert (await retention_cleanup(maintenance_of(world), OBS)).pending_uploads_removed == 1
    assert await world.pending_uploads.get(mine.storage_key) is None
    assert await world.pending_uploads.get(theirs.storage_key) is not None
    assert (await retention_cleanup(maintenance_of(world), None)).pending_uploads_removed == 1
    assert await world.pending_uploads.get(fresh.storage_key) is not None
