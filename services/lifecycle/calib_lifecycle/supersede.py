"""Supersession on ``master.created`` (SPEC §5).

Safe to repeat: the status change is conditional (only a current master becomes
superseded), and a redelivered event re-does only what may be missing after a crash
(release of claims, the events, whose message ids make repeats no-ops, and the cache).
"""

from __future__ import annotations

from calib_core import events
from calib_core.lifecycle import supersession
from calib_core.models import CURRENT_MASTER_STATUSES
from calib_infra.bus import publish
from calib_infra.calibration import invalidate_stale
from calib_infra.runtime import Runtime


async def handle_master_created(runtime: Runtime, event: events.MasterCreated) -> None:
    master = await runtime.frames.get(event.master_id)
    if master is None or not master.is_master:
        return
    observatory_id = master.observatory_id
    if master.status in CURRENT_MASTER_STATUSES:
        settings = await runtime.settings.get(observatory_id)
        current = await runtime.frames.current_masters(observatory_id, master.frame_type)
        for old, replacement in supersession(master, current, settings):
            if await runtime.frames.supersede(old.id, replacement.id, runtime.now()):
                runtime.log.info(
                    "master superseded",
                    master_id=old.id,
                    superseded_by=replacement.id,
                    observatory_id=observatory_id,
                )
    # finish the bookkeeping of every master this one replaced (or, recorded out of
    # order, of this one itself): after a crash some of it may be missing
    replaced = await runtime.frames.superseded_by(master.id)
    itself = await runtime.frames.get(master.id)
    if itself is not None and itself.superseded_by is not None:
        replaced.append(itself)
    for old in replaced:
        # frames the old master claimed and its successor did not are unclaimed again
        await runtime.frames.release(old.id)
        await publish(
            runtime.broker,
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
        runtime,
        observatory_id,
        because_of=[m.id for m in replaced] or [master.id],
        msg_id=f"cache-created-{master.id}",
    )
