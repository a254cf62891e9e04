"""Supersession on ``master.created``."""

from __future__ import annotations

import msgspec

from calib_core import events
from calib_core.models import MasterStatus
from calib_core.supersession import superseded_by
from calib_infra.bus import publish
from calib_infra.runtime import Runtime


async def handle_master_created(runtime: Runtime, body: bytes, subject: str) -> None:
    try:
        event = msgspec.json.decode(body, type=events.MasterCreated)
    except msgspec.DecodeError as error:
        runtime.log.error("invalid master.created ignored", subject=subject, error=str(error))
        return
    master = await runtime.frames.get(event.master_id)
    if master is None or master.status == MasterStatus.SUPERSEDED:
        return
    settings = await runtime.settings.get(master.observatory_id)
    current = await runtime.frames.current_masters(master.observatory_id, master.frame_type)
    for old in superseded_by(master, current, settings):
        now = runtime.now()
        await runtime.frames.update(old.id, {
            "status": MasterStatus.SUPERSEDED.value, "superseded_by": master.id, "superseded_at": now,
        })
        # frames the old master claimed and the new one did not are unclaimed again
        await runtime.frames.release(old.id)
        runtime.log.info("master superseded", master_id=old.id, superseded_by=master.id,
                         observatory_id=master.observatory_id)
        await publish(
            runtime.broker, events.MASTER_SUPERSEDED,
            events.MasterSuperseded(master_id=old.id, observatory_id=master.observatory_id,
                                    superseded_by=master.id),
            observatory_id=master.observatory_id, msg_id=f"superseded-{old.id}",
        )
