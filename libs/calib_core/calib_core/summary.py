"""The library summary of one observatory (SPEC §8 ``GET /summary``): counts and the
current masters per camera and configuration. Pure: counts come in already tallied."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec

from calib_core.models import CURRENT_MASTER_STATUSES, Frame, FrameType, MasterStatus


class CountRow(msgspec.Struct, kw_only=True):
    """How many stored frames share these attributes (one row of a database tally)."""

    camera_name: str
    frame_type: FrameType
    is_master: bool
    status: MasterStatus | None = None
    claimed: bool = False
    count: int


class ConfigurationSummary(msgspec.Struct, kw_only=True):
    config_key: str
    frame_type: FrameType
    gain: float | None
    offset: float | None
    binning: str
    readout_mode: str | None
    exposure_s: float | None
    filter: str | None
    latest_master: Frame
    current_masters: list[Frame]


class CameraSummary(msgspec.Struct, kw_only=True):
    camera_name: str
    frames: dict[str, int]
    unclaimed_frames: dict[str, int]
    masters: dict[str, int]
    configurations: list[ConfigurationSummary]


class Summary(msgspec.Struct, kw_only=True):
    observatory_id: str
    generated_at: datetime
    total_frames: int
    total_masters: int
    cameras: list[CameraSummary]


def _configurations(masters: Iterable[Frame]) -> list[ConfigurationSummary]:
    by_key: dict[str, list[Frame]] = {}
    for master in masters:
        by_key.setdefault(master.config_key or master.id, []).append(master)
    summaries = []
    for key in sorted(by_key):
        members = sorted(by_key[key], key=lambda m: (m.creation_time, m.id), reverse=True)
        latest = members[0]
        summaries.append(
            ConfigurationSummary(
                config_key=key,
                frame_type=latest.frame_type,
                gain=latest.gain,
                offset=latest.offset,
                binning=latest.binning,
                readout_mode=latest.readout_mode,
                exposure_s=latest.exposure_s if latest.frame_type == FrameType.DARK else None,
                filter=latest.filter,
                latest_master=latest,
                current_masters=members,
            )
        )
    return summaries


def summarize(
    observatory_id: str, counts: Sequence[CountRow], current_masters: Sequence[Frame], now: datetime
) -> Summary:
    """Per camera: individual frames (all, and not yet in a master) by type, masters by
    status, and per configuration its current masters, newest first."""
    cameras: dict[str, CameraSummary] = {}

    def camera(name: str) -> CameraSummary:
        if name not in cameras:
            cameras[name] = CameraSummary(
                camera_name=name,
                frames={t.value: 0 for t in FrameType},
                unclaimed_frames={t.value: 0 for t in FrameType},
                masters={s.value: 0 for s in MasterStatus},
                configurations=[],
            )
        return cameras[name]

    for row in counts:
        entry = camera(row.camera_name)
        if row.is_master:
            status = (row.status or MasterStatus.ACTIVE).value
            entry.masters[status] += row.count
        else:
            entry.frames[row.frame_type.value] += row.count
            if not row.claimed:
                entry.unclaimed_frames[row.frame_type.value] += row.count
    current = [m for m in current_masters if m.is_master and m.status in CURRENT_MASTER_STATUSES]
    for name in sorted({m.camera_name for m in current}):
        camera(name).configurations = _configurations(m for m in current if m.camera_name == name)
    ordered = [cameras[name] for name in sorted(cameras)]
    return Summary(
        observatory_id=observatory_id,
        generated_at=now,
        total_frames=sum(sum(c.frames.values()) for c in ordered),
        total_masters=sum(sum(c.masters.values()) for c in ordered),
        cameras=ordered,
    )
