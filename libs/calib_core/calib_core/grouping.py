"""Configurations and frame groups (SPEC §4).

A *configuration* is the hardware state a calibration frame was taken in; within one,
frames are clustered by rotation (flats, when rotation matters) and by temperature.
Clustering is greedy over sorted values, so the same frames always give the same
groups whatever order they arrive in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from calib_core.models import FrameMetadata, FrameType
from calib_core.settings import CalibrationSettings

T = TypeVar("T")

#: Fields every configuration shares, in key order.
HARDWARE_FIELDS = ("frame_type", "camera_name", "gain", "offset", "binning", "readout_mode")


def configuration(frame: FrameMetadata, settings: CalibrationSettings) -> dict[str, Any]:
    """The configuration fields of an individual calibration frame under ``settings``."""
    config: dict[str, Any] = {name: getattr(frame, name) for name in HARDWARE_FIELDS}
    config["frame_type"] = FrameType(frame.frame_type).value
    if frame.frame_type == FrameType.DARK and settings.camera_type == "CMOS":
        config["exposure_s"] = float(round(frame.exposure_s))
    if frame.frame_type == FrameType.FLAT:
        config["filter"] = frame.filter
    return config


def _token(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def config_key(config: dict[str, Any]) -> str:
    """A stable text key for a configuration (used for indexes and job uniqueness)."""
    return "|".join(f"{name}={_token(config[name])}" for name in sorted(config))


def cluster(items: Sequence[T], value: Callable[[T], float | None], tolerance: float) -> list[list[T]]:
    """Split ``items`` into clusters whose values span at most ``tolerance``.

    Items without a value form one cluster of their own (last). Clusters come in
    ascending value order; within a cluster the input order is kept.
    """
    known = sorted((item for item in items if value(item) is not None), key=value)  # type: ignore[arg-type]
    clusters: list[list[T]] = []
    start: float | None = None
    for item in known:
        v = value(item)
        assert v is not None
        if start is None or v - start > tolerance + 1e-9:
            clusters.append([])
            start = v
        clusters[-1].append(item)
    unknown = [item for item in items if value(item) is None]
    if unknown:
        clusters.append(unknown)
    order = {id(item): i for i, item in enumerate(items)}
    return [sorted(c, key=lambda item: order[id(item)]) for c in clusters]


def _anchor(values: Iterable[float | None]) -> str:
    present = [v for v in values if v is not None]
    return f"{min(present):.1f}" if present else "none"


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


F = TypeVar("F", bound=FrameMetadata)


@dataclass
class FrameGroup:
    """A configuration plus a temperature (and for flats, rotation) cluster."""

    config: dict[str, Any]
    config_key: str
    group_key: str
    frames: list[Any] = field(default_factory=list)

    @property
    def frame_type(self) -> FrameType:
        return FrameType(self.config["frame_type"])

    @property
    def temperature_c(self) -> float | None:
        return _mean(f.temperature_c for f in self.frames)

    @property
    def rotation_deg(self) -> float | None:
        return _mean(f.rotation_deg for f in self.frames)


def group_frames(frames: Sequence[F], settings: CalibrationSettings) -> list[FrameGroup]:
    """Group individual calibration frames of one observatory (lights are ignored)."""
    by_config: dict[str, tuple[dict[str, Any], list[F]]] = {}
    for frame in frames:
        if frame.frame_type == FrameType.LIGHT:
            continue
        config = configuration(frame, settings)
        by_config.setdefault(config_key(config), (config, []))[1].append(frame)

    groups: list[FrameGroup] = []
    for key in sorted(by_config):
        config, members = by_config[key]
        by_rotation = [members]
        if config["frame_type"] == FrameType.FLAT and settings.rotation_matching != "ignore":
            by_rotation = cluster(members, lambda f: f.rotation_deg, settings.rotation_tolerance_deg)
        for rotation_cluster in by_rotation:
            rotation_part = ""
            if rotation_cluster is not members:
                rotation_part = f"|rot@{_anchor(f.rotation_deg for f in rotation_cluster)}"
            for temp_cluster in cluster(
                rotation_cluster, lambda f: f.temperature_c, settings.temperature_tolerance_c
            ):
                temp_part = f"|temp@{_anchor(f.temperature_c for f in temp_cluster)}"
                groups.append(
                    FrameGroup(config, key, key + rotation_part + temp_part, list(temp_cluster))
                )
    return groups
