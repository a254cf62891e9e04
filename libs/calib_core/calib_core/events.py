"""Event bodies and subjects of SPEC §10. Every subject ends with ``.<observatory_id>``."""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

STREAM_NAME = "CALIBRATION"
#: Subjects kept in the CALIBRATION stream (``stack.progress`` is core NATS only).
STREAM_SUBJECTS = [
    "frame.registered.*",
    "frame.rejected.*",
    "frame.deleted.*",
    "stack.requested.*",
    "stack.deferred.*",
    "stack.failed.*",
    "master.created.*",
    "master.superseded.*",
    "master.expired.*",
    "cache.invalidated.*",
]

FRAME_REGISTERED = "frame.registered"
FRAME_REJECTED = "frame.rejected"
FRAME_DELETED = "frame.deleted"
STACK_REQUESTED = "stack.requested"
STACK_PROGRESS = "stack.progress"
STACK_DEFERRED = "stack.deferred"
STACK_FAILED = "stack.failed"
MASTER_CREATED = "master.created"
MASTER_SUPERSEDED = "master.superseded"
MASTER_EXPIRED = "master.expired"
CACHE_INVALIDATED = "cache.invalidated"

#: ``\Z`` rather than ``$``: ``$`` would also accept a trailing newline ("obs\n").
OBSERVATORY_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")


def subject(kind: str, observatory_id: str) -> str:
    """The subject of an event of ``kind`` for one observatory."""
    if not isinstance(observatory_id, str) or not OBSERVATORY_ID_PATTERN.match(observatory_id):
        raise ValueError(f"invalid observatory id {observatory_id!r}")
    return f"{kind}.{observatory_id}"


def observatory_of(subject_name: str) -> str:
    return subject_name.rsplit(".", 1)[-1]


class FrameRegistered(msgspec.Struct, kw_only=True):
    """Published by the capture plugin (or the gateway) once the object is in the bucket."""

    event_id: str
    observatory_id: str
    storage_key: str
    sha256: str | None = None
    frame_type: str | None = None
    camera_name: str | None = None
    gain: float | None = None
    offset: float | None = None
    binning: str | None = None
    readout_mode: str | None = None
    filter: str | None = None
    exposure_s: float | None = None
    temperature_c: float | None = None
    set_temperature_c: float | None = None
    rotation_deg: float | None = None
    captured_at: datetime | None = None
    width: int | None = None
    height: int | None = None


class FrameRejected(msgspec.Struct, kw_only=True):
    event_id: str
    observatory_id: str
    reason: str
    storage_key: str | None = None


class FrameDeleted(msgspec.Struct, kw_only=True):
    frame_id: str
    observatory_id: str
    is_master: bool


class StackRequested(msgspec.Struct, kw_only=True):
    job_id: str
    observatory_id: str
    attempt: int = 1


class StackProgress(msgspec.Struct, kw_only=True):
    job_id: str
    observatory_id: str
    progress: float
    status: str


class StackDeferred(msgspec.Struct, kw_only=True):
    job_id: str
    observatory_id: str
    reason: str


class StackFailed(msgspec.Struct, kw_only=True):
    job_id: str
    observatory_id: str
    reason: str


class MasterCreated(msgspec.Struct, kw_only=True):
    master_id: str
    observatory_id: str
    job_id: str | None = None


class MasterSuperseded(msgspec.Struct, kw_only=True):
    master_id: str
    observatory_id: str
    superseded_by: str


class MasterExpired(msgspec.Struct, kw_only=True):
    master_id: str
    observatory_id: str


class CacheInvalidated(msgspec.Struct, kw_only=True):
    observatory_id: str
    master_ids: list[str]
    entries: int


#: Request/reply subjects of the lifecycle service: core NATS, outside the stream (a
#: request on a stream subject would be answered by the stream's publish acknowledgement).
LIFECYCLE_CALIBRATE = "lifecycle.calibrate"
LIFECYCLE_MAINTENANCE = "lifecycle.maintenance"
LIFECYCLE_PREVIEW = "lifecycle.preview"


class CalibrateRequest(msgspec.Struct, kw_only=True):
    """Make (or find) the calibrated file of a light in the S3 cache."""

    frame_id: str


class CalibrateReply(msgspec.Struct, kw_only=True):
    status: str  # "ready" | "failed" | "no_masters" | "not_found"
    storage_key: str | None = None
    error: str | None = None
    computed: bool = False  # False: served from the cache


class PreviewRequest(msgspec.Struct, kw_only=True):
    """Make (or find) the PNG preview of an individual frame."""

    frame_id: str


class PreviewReply(msgspec.Struct, kw_only=True):
    status: str  # "ready" | "failed" | "not_found"
    preview_key: str | None = None
    error: str | None = None


class MaintenanceCommand(msgspec.Struct, kw_only=True):
    """Run a maintenance task now, for one observatory or (None) server-wide."""

    task: str  # "expiry-check" | "retention-cleanup"
    observatory_id: str | None = None
