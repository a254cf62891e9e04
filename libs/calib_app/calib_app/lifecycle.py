"""What follows a ``master.created`` in the lifecycle service: supersession (SPEC §5) and
the description of a master made elsewhere.

Both are safe to repeat, as a redelivered event repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass

from calib_app.calibration import FrameLibrary, invalidate_stale
from calib_app.ports import (
    FrameFiles,
    FrameRepository,
    InvalidImageError,
    Log,
    MasterDescriber,
    ObjectStore,
    UnusableFileError,
)
from calib_core import events
from calib_core.lifecycle import supersession
from calib_core.masters import preview_storage_key
from calib_core.models import CURRENT_MASTER_STATUSES


async def supersede(library: FrameLibrary, master_id: str) -> None:
    """Supersede the current masters the new master ``master_id`` replaces.

    The status change is conditional (only a current master becomes superseded), and a
    repeat re-does only what may be missing after a crash: the release of claims, the
    events (whose message ids make repeats no-ops) and the cache invalidation.
    """
    master = await library.frames.get(master_id)
    if master is None or not master.is_master:
        return
    observatory_id = master.observatory_id
    if master.status in CURRENT_MASTER_STATUSES:
        settings = await library.settings.get(observatory_id)
        current = await library.frames.current_masters(observatory_id, master.frame_type)
        for old, replacement in supersession(master, current, settings):
            if await library.frames.supersede(old.id, replacement.id, library.clock.now()):
                library.log.info(
                    "master superseded",
                    master_id=old.id,
                    superseded_by=replacement.id,
                    observatory_id=observatory_id,
                )
    # finish the bookkeeping of every master this one replaced (or, recorded out of
    # order, of this one itself): after a crash some of it may be missing
    replaced = await library.frames.superseded_by(master.id)
    itself = await library.frames.get(master.id)
    if itself is not None and itself.superseded_by is not None:
        replaced.append(itself)
    for old in replaced:
        # frames the old master claimed and its successor did not are unclaimed again
        await library.frames.release(old.id)
        await library.events.publish(
            events.MASTER_SUPERSEDED,
            events.MasterSuperseded(
                master_id=old.id,
                observatory_id=observatory_id,
                superseded_by=old.superseded_by or master.id,
            ),
            observatory_id=observatory_id,
            msg_id=f"superseded-{old.id}",
        )
    await invalidate_stale(
        library,
        observatory_id,
        because_of=[m.id for m in replaced] or [master.id],
        msg_id=f"cache-created-{master.id}",
    )


@dataclass(frozen=True)
class UploadedMasters:
    """What describing a master made elsewhere needs."""

    frames: FrameRepository
    store: ObjectStore
    files: FrameFiles
    describer: MasterDescriber
    log: Log


async def describe_uploaded_master(masters: UploadedMasters, master_id: str) -> None:
    """Add the statistics and preview the stacker would have added to a master that
    reached the library without numerics (``POST /masters/upload``).

    A master that has its statistics is left alone (the stacker's, or described before),
    and the preview is written before the record names it.
    """
    master = await masters.frames.get(master_id)
    if master is None or not master.is_master or master.stats is not None:
        return
    log = masters.log.bind(master_id=master.id, observatory_id=master.observatory_id)
    with masters.files.workdir(prefix="describe-") as workdir:
        path = workdir / "master.fits"
        try:
            await masters.files.fetch_frame(master, path, "uploaded master")
            await masters.files.trim()
            description = await masters.describer.describe(path, master.frame_type)
        except (UnusableFileError, InvalidImageError) as error:
            log.warning("uploaded master cannot be described", error=str(error))
            return
    preview_key = preview_storage_key(master.observatory_id, master.id)
    await masters.store.put_bytes(preview_key, description.preview_png, content_type="image/png")
    await masters.frames.update(master.id, {"stats": description.stats, "preview_key": preview_key})
    log.info("uploaded master described", median=description.stats["median"])


async def frame_preview(masters: UploadedMasters, frame_id: str) -> events.PreviewReply:
    """The preview of a frame, made on first request (individual frames have none until
    someone asks) and stored under ``previews/`` like a master's; its record names it only
    once it is written. A deleted frame takes its preview along."""
    frame = await masters.frames.get(frame_id)
    if frame is None:
        return events.PreviewReply(status="not_found")
    if frame.preview_key and await masters.store.stat(frame.preview_key) is not None:
        return events.PreviewReply(status="ready", preview_key=frame.preview_key)
    with masters.files.workdir(prefix="preview-") as workdir:
        path = workdir / "frame.fits"
        try:
            await masters.files.fetch_frame(frame, path, "frame")
            await masters.files.trim()
            png = await masters.describer.preview(path)
        except (UnusableFileError, InvalidImageError) as error:
            return events.PreviewReply(status="failed", error=str(error))
    preview_key = preview_storage_key(frame.observatory_id, frame.id)
    await masters.store.put_bytes(preview_key, png, content_type="image/png")
    await masters.frames.update(frame.id, {"preview_key": preview_key})
    return events.PreviewReply(status="ready", preview_key=preview_key)
