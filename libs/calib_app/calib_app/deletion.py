"""Deleting frames and masters, and finding orphaned objects (SPEC §6).

A deletion never leaves a record pointing at a missing object: the record is first
marked ``deleting`` (from then on it is no longer a current master), then its objects
go, then the record. Every step can be repeated, so a deletion cut short by a crash is
finished by the next retention cleanup (:func:`finish_pending`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from calib_app.calibration import FrameLibrary, drop_entry, invalidate_stale
from calib_app.ports import EventBacklog, PendingUploadRepository
from calib_core import events
from calib_core.lifecycle import old_enough_for_orphan
from calib_core.models import Frame, FrameType
from calib_core.presigned import may_be_announced, pending_cutoff
from calib_core.quality import held_for_deleted_master

#: Key prefixes of an observatory's objects (``frames/`` is where the plugin and the
#: gateway upload; the rest are written by the services).
OBJECT_PREFIXES = ("frames", "masters", "previews", "calibrated")
_BATCH = 500


async def delete_frame(library: FrameLibrary, frame: Frame) -> None:
    """Delete a frame or master now: record, object and preview."""
    await library.frames.mark_deleting(frame.id)
    await _finish(library, frame)


async def _finish(library: FrameLibrary, frame: Frame) -> None:
    keys = [k for k in (frame.storage_key, frame.preview_key) if k]
    shared = await library.frames.referenced_keys(keys, except_id=frame.id)
    for key in keys:
        if key not in shared:
            await library.store.delete(key)
    if frame.is_master:
        # its frames are held, not unclaimed: a deleted master's frames are suspect, and an
        # administrator releases them to stack them again (SPEC §6)
        await library.frames.hold_claimed(frame.id, held_for_deleted_master(frame.id))
        # lights it calibrated no longer use it: their cached files go
        await invalidate_stale(
            library, frame.observatory_id, because_of=[frame.id], msg_id=f"cache-deleted-{frame.id}"
        )
    else:
        await library.frames.remove_component(frame.id)
        if frame.frame_type == FrameType.LIGHT and (entry := await library.cache.get(frame.id)):
            await drop_entry(library, entry)
    await library.events.publish(
        events.FRAME_DELETED,
        events.FrameDeleted(
            frame_id=frame.id, observatory_id=frame.observatory_id, is_master=frame.is_master
        ),
        observatory_id=frame.observatory_id,
        msg_id=f"deleted-{frame.id}",
    )
    await library.frames.delete(frame.id)
    library.log.info(
        "frame deleted",
        frame_id=frame.id,
        observatory_id=frame.observatory_id,
        is_master=frame.is_master,
    )


async def finish_pending(library: FrameLibrary, observatory_id: str | None) -> int:
    """Finish deletions a crash cut short (records still marked ``deleting``)."""
    frames = await library.frames.pending_deletions(observatory_id)
    for frame in frames:
        await _finish(library, frame)
    entries = await library.cache.pending_deletions(observatory_id)
    for entry in entries:
        await drop_entry(library, entry)
    return len(frames) + len(entries)


def object_prefixes(observatory_id: str | None) -> list[str]:
    """Where an observatory's objects live; the whole bucket server-wide."""
    if observatory_id is None:
        return [""]
    return [f"{prefix}/{observatory_id}/" for prefix in OBJECT_PREFIXES]


async def delete_orphans(
    library: FrameLibrary,
    observatory_id: str | None,
    now: datetime,
    *,
    pending: PendingUploadRepository,
    backlog: EventBacklog,
) -> int:
    """Delete objects that no record names and that are older than a day.

    An object can be named before any record of the library names it (SPEC §12,
    cleanup): by a pending upload, until its URL expired plus the grace, and by a
    ``frame.registered`` event the registry has not handled yet. Such an object is kept
    whatever its age (the uploader's clock, or the bucket's, may be off). The unhandled
    events are read once, before anything is listed: an event handled since then has
    made its record by the time the records are asked. While they cannot be read,
    nothing under ``frames/`` goes this time."""
    announced = await backlog.unhandled_storage_keys(observatory_id)
    if announced is None:
        library.log.warning(
            "orphans under frames/ kept: the unhandled events cannot be read now",
            observatory_id=observatory_id,
        )
    cutoff = pending_cutoff(now)
    deleted = 0
    for prefix in object_prefixes(observatory_id):
        async for listed in library.store.list_batches(prefix, _BATCH):
            old = [
                o.key
                for o in listed
                if old_enough_for_orphan(o.modified, now)
                and (announced is not None or not may_be_announced(o.key))
            ]
            if not old:
                continue
            named = (
                await _referenced(library, old)
                | await pending.referenced_keys(old, expiring_from=cutoff)
                | (announced or set()).intersection(old)
            )
            for key in old:
                if key not in named:
                    await library.store.delete(key)
                    library.log.info("orphaned object deleted", key=key)
                    deleted += 1
    return deleted


async def _referenced(library: FrameLibrary, keys: Sequence[str]) -> set[str]:
    return await library.frames.referenced_keys(keys) | await library.cache.referenced_keys(keys)
