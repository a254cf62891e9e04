"""Statistics and a preview for masters made elsewhere (``POST /masters/upload``).

The stacker describes the masters it makes as it writes them; an uploaded master reaches
the library through the gateway, which does not run numerics, so on its
``master.created`` this service reads the file and adds what the stacker would have.
Safe to repeat: a master that has its statistics is left alone, and the preview is
written before the record names it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from calib_core import events
from calib_core.masters import preview_storage_key
from calib_core.models import Frame
from calib_infra.filecache import UnusableFileError
from calib_infra.runtime import Runtime
from calib_stack.fitsio import InvalidFitsError, read_image
from calib_stack.master import master_stats
from calib_stack.preview import preview_png


async def handle_master_described(runtime: Runtime, event: events.MasterCreated) -> None:
    master = await runtime.frames.get(event.master_id)
    if master is None or not master.is_master or master.stats is not None:
        return
    log = runtime.log.bind(master_id=master.id, observatory_id=master.observatory_id)
    with runtime.files.workdir(prefix="describe-") as workdir:
        path = workdir / "master.fits"
        try:
            await runtime.files.fetch_frame(master, path, "uploaded master")
            await runtime.files.trim()
            stats, preview = await asyncio.to_thread(_describe, path, master)
        except (UnusableFileError, InvalidFitsError) as error:
            log.warning("uploaded master cannot be described", error=str(error))
            return
    preview_key = preview_storage_key(master.observatory_id, master.id)
    await runtime.store.put_bytes(preview_key, preview, content_type="image/png")
    await runtime.frames.update(master.id, {"stats": stats, "preview_key": preview_key})
    log.info("uploaded master described", median=stats["median"])


def _describe(path: Path, master: Frame) -> tuple[dict, bytes]:
    image = read_image(path)
    return master_stats(image, master.frame_type.value), preview_png(image)
