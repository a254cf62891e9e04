"""Files uploaded through the API (SPEC §8): a frame, registered as a plugin's would be,
and a master made elsewhere, recorded as the current master of its configuration."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import msgspec

from calib_app.errors import ConflictError, RefusedError
from calib_app.ports import (
    Clock,
    EventPublisher,
    FrameRepository,
    Log,
    ObjectStore,
    SettingsRepository,
)
from calib_core import events
from calib_core.imagefile import kind_of
from calib_core.masters import uploaded_master
from calib_core.models import Frame, FrameMetadata, FrameType
from calib_core.xisfheader import SIGNATURE


@dataclass(frozen=True)
class Uploads:
    frames: FrameRepository
    settings: SettingsRepository
    store: ObjectStore
    events: EventPublisher
    clock: Clock
    log: Log


async def register_upload(
    uploads: Uploads, observatory_id: str, metadata: Mapping[str, Any], file: IO[bytes]
) -> events.FrameRegistered:
    """Store the file, then publish ``frame.registered`` for it: the registry takes it
    from there exactly as it takes a plugin's frame. ``metadata`` holds §2 fields the
    header lacks or gets wrong; a value of the wrong type raises msgspec.ValidationError
    before anything is stored."""
    event_id = uuid.uuid4().hex
    suffix = kind_of(file.read(len(SIGNATURE))).lower()  # the object is named as it is
    file.seek(0)
    registration = msgspec.convert(
        {
            **metadata,
            "event_id": event_id,
            "observatory_id": observatory_id,
            "storage_key": f"frames/{observatory_id}/{event_id}.{suffix}",
        },
        events.FrameRegistered,
        strict=False,
    )
    await uploads.store.put_stream(registration.storage_key, file)
    await uploads.events.publish(
        events.FRAME_REGISTERED, registration, observatory_id=observatory_id, msg_id=event_id
    )
    return registration


async def add_uploaded_master(
    uploads: Uploads,
    observatory_id: str,
    metadata: FrameMetadata,
    header: Mapping[str, Any],
    file: IO[bytes],
    *,
    size_bytes: int,
    sha256: str,
) -> Frame:
    """Record an uploaded master FITS file (``metadata`` resolved from its form and
    ``header``) as active; ``master.created`` lets the lifecycle service supersede the
    master it replaces. Raises ConflictError when the file is already stored."""
    if metadata.frame_type == FrameType.LIGHT:
        raise RefusedError("a master must be a dark, flat or bias frame")
    master = uploaded_master(
        metadata,
        header,
        master_id=f"u{uuid.uuid4().hex}",
        observatory_id=observatory_id,
        size_bytes=size_bytes,
        sha256=sha256,
        settings=await uploads.settings.get(observatory_id),
        now=uploads.clock.now(),
    )
    file.seek(0)
    # the object first, then the record: a record never points at a missing object
    await uploads.store.put_stream(master.storage_key, file)
    if not await uploads.frames.insert(master):
        await uploads.store.delete(master.storage_key)
        existing = await uploads.frames.by_file(observatory_id, sha256)
        raise ConflictError(
            f"this file is already stored as '{existing.id if existing else 'another frame'}'"
        )
    try:
        await uploads.events.publish(
            events.MASTER_CREATED,
            events.MasterCreated(master_id=master.id, observatory_id=observatory_id),
            observatory_id=observatory_id,
            msg_id=f"created-{master.id}",
        )
    except Exception:
        # without master.created nothing would supersede the old master: undo
        await uploads.frames.delete(master.id)
        await uploads.store.delete(master.storage_key)
        raise
    uploads.log.info(
        "master uploaded",
        master_id=master.id,
        observatory_id=observatory_id,
        frame_type=master.frame_type.value,
    )
    return master
