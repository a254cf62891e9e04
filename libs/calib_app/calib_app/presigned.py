"""Presigned uploads (SPEC §8 ``POST /uploads``, §12): a plugin puts its file straight into
the bucket with a URL Calib signed, never holding the bucket's credentials, then
publishes ``frame.registered`` for the key it was given."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from calib_app.errors import NotFoundError
from calib_app.ports import Clock, Log, ObjectStore, ObservatoryRepository, PendingUploadRepository
from calib_core.presigned import UPLOAD_URL_LIFETIME, UploadTicket, pending_upload


@dataclass(frozen=True)
class PresignedUploads:
    observatories: ObservatoryRepository
    pending: PendingUploadRepository
    store: ObjectStore
    clock: Clock
    log: Log


async def start_upload(
    uploads: PresignedUploads, observatory_id: str, filename: str
) -> UploadTicket:
    """A new key under ``frames/<observatory_id>/`` for ``filename`` (made safe) and a PUT
    URL for it, valid :data:`UPLOAD_URL_LIFETIME`. The pending upload is recorded before
    the URL exists, so no object it lets in is ever taken for an orphan. Raises
    NotFoundError for an unknown observatory. (The caller's permission is the route's.)"""
    if await uploads.observatories.get(observatory_id) is None:
        raise NotFoundError(f"observatory '{observatory_id}' not found")
    upload = pending_upload(observatory_id, filename, uuid.uuid4().hex, uploads.clock.now())
    await uploads.pending.add(upload)
    url = await uploads.store.presigned_put(upload.storage_key, UPLOAD_URL_LIFETIME)
    uploads.log.info(
        "upload url issued",
        observatory_id=observatory_id,
        storage_key=upload.storage_key,
        expires_at=upload.expires_at.isoformat(),
    )
    return UploadTicket(
        storage_key=upload.storage_key, upload_url=url, expires_at=upload.expires_at
    )
