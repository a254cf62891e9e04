"""Presigned uploads (SPEC §8 ``POST /uploads``, §12 storage and cleanup): pure rules.

A plugin asks for an upload; Calib chooses the key, under ``frames/<observatory>/``, and
signs a PUT of it for :data:`UPLOAD_URL_LIFETIME`. Until the plugin announces the object
with ``frame.registered``, a *pending upload* record names it, so the orphan cleanup
leaves it alone; the record outlives the URL by :data:`PENDING_UPLOAD_GRACE` (a PUT that
started just before the URL expired, then the publish) and is removed afterwards.
"""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import datetime, timedelta

import msgspec

#: How long a presigned PUT URL is valid (SPEC §12).
UPLOAD_URL_LIFETIME = timedelta(minutes=15)
#: How long after its URL expired a pending upload still protects its object: time to
#: finish a PUT that began just in time and to publish ``frame.registered`` for it.
PENDING_UPLOAD_GRACE = timedelta(hours=1)
#: The longest file name kept in a key (the extension is kept when a name is cut).
MAX_FILENAME_CHARS = 100
#: A file name with nothing usable left in it is stored under this name.
DEFAULT_FILENAME = "frame.fits"

_ALLOWED = frozenset(string.ascii_letters + string.digits + "._-")
_LONGEST_EXTENSION = 10


class PendingUpload(msgspec.Struct, kw_only=True):
    """An upload URL handed out and not yet expired (plus the grace): its key is named."""

    storage_key: str
    observatory_id: str
    created_at: datetime
    expires_at: datetime
    """When the URL stops working (``created_at`` + :data:`UPLOAD_URL_LIFETIME`)."""


class UploadTicket(msgspec.Struct, kw_only=True):
    """What the plugin is given: where its file goes and the URL to PUT it to."""

    storage_key: str
    upload_url: str
    expires_at: datetime


def safe_filename(name: str) -> str:
    """``name`` as the last part of a storage key: its last path component only, in ASCII
    letters, digits, ``.``, ``_`` and ``-`` (anything else becomes ``_``), never ``..`` or a
    leading dot, at most :data:`MAX_FILENAME_CHARS` long; :data:`DEFAULT_FILENAME` when
    nothing is left."""
    name = unicodedata.normalize("NFKC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c if c in _ALLOWED else "_" for c in name)
    name = re.sub(r"\.{2,}", ".", re.sub(r"_{2,}", "_", name)).strip("._-")
    if not name:
        return DEFAULT_FILENAME
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension) <= _LONGEST_EXTENSION:
            name = f"{stem[: MAX_FILENAME_CHARS - len(extension) - 1].rstrip('._-')}.{extension}"
        else:
            name = name[:MAX_FILENAME_CHARS].rstrip("._-")
    return name or DEFAULT_FILENAME


def upload_key(observatory_id: str, unique: str, filename: str) -> str:
    """``frames/<observatory>/<unique>/<safe file name>``: one folder per upload, so two
    uploads of files named alike never meet."""
    return f"frames/{observatory_id}/{unique}/{safe_filename(filename)}"


def pending_upload(observatory_id: str, filename: str, unique: str, now: datetime) -> PendingUpload:
    return PendingUpload(
        storage_key=upload_key(observatory_id, unique, filename),
        observatory_id=observatory_id,
        created_at=now,
        expires_at=now + UPLOAD_URL_LIFETIME,
    )


def protected_until(upload: PendingUpload) -> datetime:
    """Until when the upload's object is kept, uploaded or not, announced or not."""
    return upload.expires_at + PENDING_UPLOAD_GRACE


def still_pending(upload: PendingUpload, now: datetime) -> bool:
    return now <= protected_until(upload)


def pending_cutoff(now: datetime) -> datetime:
    """Pending uploads whose URL expired before this are over (the grace has passed)."""
    return now - PENDING_UPLOAD_GRACE


def may_be_announced(key: str) -> bool:
    """Whether a ``frame.registered`` event may name ``key``: plugins announce objects
    under ``frames/`` only (the rest is written by the services)."""
    return key.startswith("frames/")
