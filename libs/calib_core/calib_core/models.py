"""Domain records shared by every service: frames, masters, jobs, observatories."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec


class FrameType(StrEnum):
    DARK = "dark"
    FLAT = "flat"
    BIAS = "bias"
    LIGHT = "light"


CALIBRATION_TYPES = (FrameType.BIAS, FrameType.DARK, FrameType.FLAT)


class MasterStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


CURRENT_MASTER_STATUSES = (MasterStatus.ACTIVE, MasterStatus.EXPIRED)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEFERRED = "deferred"


OPEN_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DEFERRED)


class JobTrigger(StrEnum):
    REGISTRATION = "registration"
    SWEEP = "sweep"
    MANUAL = "manual"
    RETRY = "retry"


class CalibrationStatus(StrEnum):
    CALIBRATED = "calibrated"
    CAL_FAILED = "cal_failed"
    NO_MASTERS = "no_masters"


class FrameMetadata(msgspec.Struct, kw_only=True, omit_defaults=False):
    """The §2 fields of a frame, as far as they are known."""

    frame_type: FrameType
    camera_name: str
    exposure_s: float
    width: int
    height: int
    gain: float | None = None
    offset: float | None = None
    binning: str = "1x1"
    readout_mode: str | None = None
    filter: str | None = None
    temperature_c: float | None = None
    set_temperature_c: float | None = None
    rotation_deg: float | None = None
    captured_at: datetime | None = None


class GroupProgress(msgspec.Struct, kw_only=True):
    """Where a frame group stands against the automatic threshold (SPEC §5)."""

    unclaimed: int
    """Retained frames not in a current master: what the triggers count."""
    retained: int
    """Frames a master would be stacked from now."""
    threshold: int
    complete: bool
    """The triggers would queue a master for it."""


class Frame(FrameMetadata, kw_only=True):
    """A stored frame: an individual frame (dark, flat, bias, light) or a master.

    Master-only fields stay ``None`` on individual frames. ``master_id`` on an
    individual frame names the current master that claims it (``None`` = unclaimed).
    """

    id: str
    observatory_id: str
    storage_key: str
    size_bytes: int
    sha256: str
    registered_at: datetime
    is_master: bool = False
    config_key: str | None = None
    master_id: str | None = None
    # curation (SPEC §6): a held individual frame is kept but never stacked until released
    held: bool = False
    held_reason: str | None = None
    # master fields
    status: MasterStatus | None = None
    n_frames: int | None = None
    method: str | None = None
    method_params: dict[str, Any] | None = None
    created_at: datetime | None = None
    superseded_by: str | None = None
    superseded_at: datetime | None = None
    job_id: str | None = None
    stats: dict[str, Any] | None = None
    components: list[str] | None = None
    preview_key: str | None = None
    temperature_min_c: float | None = None
    temperature_max_c: float | None = None
    # light fields
    calibration_status: CalibrationStatus | None = None
    calibration_error: str | None = None
    # computed for GET /frames/{id} of a light, never stored: master ids by type, warnings
    calibration_masters: dict[str, str] | None = None
    calibration_warnings: list[str] | None = None
    # computed for the library's individual calibration frames, never stored: the group
    # the server puts the frame in (``config_key`` too) and its progress
    group_key: str | None = None
    group: GroupProgress | None = None

    @property
    def creation_time(self) -> datetime:
        """When a master was made: ``created_at``, or ``registered_at`` for the uploaded
        or old records that lack it. Ages and "newest" are measured from it."""
        return self.created_at or self.registered_at


class GroupRef(msgspec.Struct, kw_only=True):
    """Identifies a frame group: a configuration plus a temperature cluster."""

    config_key: str
    temperature_c: float | None = None


class StackJob(msgspec.Struct, kw_only=True):
    id: str
    observatory_id: str
    frame_type: FrameType
    config_key: str
    group_key: str
    configuration: dict[str, Any]
    temperature_c: float | None
    trigger: JobTrigger
    status: JobStatus
    frame_ids: list[str]
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    progress: float = 0.0
    error: str | None = None
    master_id: str | None = None
    deferred_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    cluster_slot: str | None = None
    """A manual job for another temperature cluster than its configuration's open job
    gets a queue slot of its own, named by its group key (None: the configuration's)."""


class Observatory(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: datetime


class Rejection(msgspec.Struct, kw_only=True):
    event_id: str
    observatory_id: str
    storage_key: str | None
    reason: str
    rejected_at: datetime
