"""Small builders of domain records for the calib_core unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from calib_core.grouping import FrameGroup, config_key, configuration
from calib_core.models import Frame, FrameType, JobStatus, JobTrigger, MasterStatus, StackJob
from calib_core.settings import CalibrationSettings

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
OBS = "obs-1"

_ids = itertools.count(1)


def next_id(prefix: str = "f") -> str:
    return f"{prefix}{next(_ids):06d}"


def frame(frame_type: FrameType | str = FrameType.DARK, **overrides: Any) -> Frame:
    """An individual frame with sensible defaults; any field can be overridden."""
    frame_id = overrides.pop("id", None) or next_id()
    values: dict[str, Any] = {
        "frame_type": FrameType(frame_type),
        "camera_name": "ZWO ASI2600MM",
        "exposure_s": 60.0,
        "width": 64,
        "height": 48,
        "gain": 100.0,
        "offset": 50.0,
        "binning": "1x1",
        "readout_mode": None,
        "filter": "L" if FrameType(frame_type) in (FrameType.FLAT, FrameType.LIGHT) else None,
        "temperature_c": -10.0,
        "set_temperature_c": -10.0,
        "rotation_deg": None,
        "captured_at": NOW - timedelta(hours=1),
        "id": frame_id,
        "observatory_id": OBS,
        "storage_key": f"frames/{OBS}/{frame_id}.fits",
        "size_bytes": 6144,
        "sha256": frame_id.rjust(64, "0"),
        "registered_at": NOW - timedelta(minutes=30),
    }
    values.update(overrides)
    return Frame(**values)


def frames(n: int, frame_type: FrameType | str = FrameType.DARK, **overrides: Any) -> list[Frame]:
    return [frame(frame_type, **overrides) for _ in range(n)]


def master(frame_type: FrameType | str = FrameType.DARK, **overrides: Any) -> Frame:
    """A current master (status active) created at ``created_at`` (default NOW - 1 day)."""
    values: dict[str, Any] = {
        "id": next_id("m"),
        "is_master": True,
        "status": MasterStatus.ACTIVE,
        "created_at": NOW - timedelta(days=1),
        "n_frames": 10,
        "method": "sigma_clip",
    }
    values.update(overrides)
    settings = values.pop("settings", CalibrationSettings())
    result = frame(frame_type, **values)
    if result.config_key is None:
        result.config_key = config_key(configuration(result, settings))
    return result


def group(members: list[Frame], settings: CalibrationSettings | None = None) -> FrameGroup:
    """A hand-made group of ``members`` (configuration taken from the first frame)."""
    settings = settings or CalibrationSettings()
    config = configuration(members[0], settings)
    key = config_key(config)
    return FrameGroup(config, key, key + "|temp@test", list(members))


def job(frame_type: FrameType | str = FrameType.DARK, **overrides: Any) -> StackJob:
    settings = overrides.pop("settings_obj", CalibrationSettings())
    values: dict[str, Any] = {
        "id": "job0001",
        "observatory_id": OBS,
        "frame_type": FrameType(frame_type),
        "config_key": "cfg",
        "group_key": "cfg|temp@-10.0",
        "configuration": {"frame_type": FrameType(frame_type).value},
        "temperature_c": -10.0,
        "trigger": JobTrigger.MANUAL,
        "status": JobStatus.RUNNING,
        "frame_ids": [],
        "settings": settings_dict(settings),
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return StackJob(**values)


def settings_dict(settings: CalibrationSettings) -> dict[str, Any]:
    return msgspec.structs.asdict(settings)
