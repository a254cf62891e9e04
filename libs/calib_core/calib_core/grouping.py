"""Configurations and frame groups (SPEC §4).

A *configuration* is the hardware state a calibration frame was taken in; within one,
frames are clustered by rotation (flats, when rotation matters) and by temperature.
Clustering is greedy over sorted values, so the same frames always give the same
groups whatever order they arrive in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from calib_core.models import FrameMetadata, FrameType
from calib_core.settings import CalibrationSettings

T = TypeVar("T")

#: Fields every configuration shares, in key order.
HARDWARE_FIELDS = ("frame_type", "camera_name", "gain", "offset", "binning", "readout_mode")


def exposure_second(exposure_s: float) -> float:
    """An exposure rounded to the nearest second, halves up (0.5 → 1, 2.5 → 3).

    Python's ``round`` rounds halves to even, which would put 1.5 s and 2.5 s darks
    together (both → 2) and a 0.5 s dark at 0 s.
    """
    return float(math.floor(float(exposure_s) + 0.5))


def configuration(frame: FrameMetadata, settings: CalibrationSettings) -> dict[str, Any]:
    """The configuration fields of an individual calibration frame under ``settings``."""
    config: dict[str, Any] = {name: getattr(frame, name) for name in HARDWARE_FIELDS}
    config["frame_type"] = FrameType(frame.frame_type).value
    if frame.frame_type == FrameType.DARK and settings.camera_type == "CMOS":
        config["exposure_s"] = exposure_second(frame.exposure_s)
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


def cluster(
    items: Sequence[T], value: Callable[[T], float | None], tolerance: float
) -> list[list[T]]:
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


def _unwrap_angles(values: Sequence[float]) -> dict[float, float]:
    """Angles (degrees) mapped onto a line that is cut at the widest empty arc of the
    circle, so that 359.8° and 0.1° sit next to each other (359.8 → 0.1 + 360 - ...).

    With the widest gap at 360°/0° (the usual case) every angle maps to itself mod 360.
    """
    angles = sorted({v % 360.0 for v in values})
    if len(angles) < 2:
        return {v: v % 360.0 for v in values}
    # gap *before* each angle; index 0's gap is the one across 360°/0°
    gaps = [angles[0] + 360.0 - angles[-1]] + [
        b - a for a, b in zip(angles, angles[1:], strict=False)
    ]
    cut = max(range(len(angles)), key=lambda i: (gaps[i], -i))  # ties: prefer the 0° cut
    base = angles[cut]
    return {v: base + ((v % 360.0) - base) % 360.0 for v in values}


def cluster_angles(
    items: Sequence[T], value: Callable[[T], float | None], tolerance: float
) -> list[list[T]]:
    """Like :func:`cluster` for angles in degrees, measuring distance around the circle."""
    known = [value(item) for item in items]
    unwrapped = _unwrap_angles([v for v in known if v is not None])
    return cluster(
        items, lambda item: None if value(item) is None else unwrapped[value(item)], tolerance
    )


def _anchor(values: Iterable[float | None]) -> str:
    """The lowest value of a cluster, as text for a group key.

    Exact (``repr``) so two clusters never share a key, even with a tolerance of 0;
    ``+ 0.0`` makes -0.0 and 0.0 the same text whatever order they come in.
    """
    present = [v for v in values if v is not None]
    return repr(float(min(present)) + 0.0) if present else "none"


def _rotation_anchor(frames: Sequence[FrameMetadata], unwrapped: dict[float, float]) -> str:
    """The angle (0–360) where a rotation cluster starts going round the circle."""
    present = [f.rotation_deg for f in frames if f.rotation_deg is not None]
    if not present:
        return "none"
    start = min(present, key=lambda v: (unwrapped[v], v))
    return repr(float(start) % 360.0 + 0.0)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def mean_angle(values: Iterable[float | None]) -> float | None:
    """The mean of angles in degrees (0–360), going round the circle: 359.8° and 0.2°
    average to 0°, not 180°. ``None`` values are left out; no values give ``None``."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    unwrapped = _unwrap_angles(present)
    mean = sum(unwrapped[v] for v in present) / len(present)
    return mean % 360.0 + 0.0


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
        return mean_angle(f.rotation_deg for f in self.frames)


def group_frames(frames: Sequence[F], settings: CalibrationSettings) -> list[FrameGroup]:
    """Group individual calibration frames of one observatory. Lights are ignored, and so
    are held frames (SPEC §6): no trigger, sweep or manual creation stacks them."""
    by_config: dict[str, tuple[dict[str, Any], list[F]]] = {}
    for frame in frames:
        if frame.frame_type == FrameType.LIGHT or getattr(frame, "held", False):
            continue
        config = configuration(frame, settings)
        by_config.setdefault(config_key(config), (config, []))[1].append(frame)

    groups: list[FrameGroup] = []
    for key in sorted(by_config):
        config, members = by_config[key]
        by_rotation = [members]
        unwrapped: dict[float, float] = {}
        if config["frame_type"] == FrameType.FLAT and settings.rotation_matching != "ignore":
            by_rotation = cluster_angles(
                members, lambda f: f.rotation_deg, settings.rotation_tolerance_deg
            )
            unwrapped = _unwrap_angles(
                [f.rotation_deg for f in members if f.rotation_deg is not None]
            )
        for rotation_cluster in by_rotation:
            rotation_part = ""
            if rotation_cluster is not members:
                rotation_part = f"|rot@{_rotation_anchor(rotation_cluster, unwrapped)}"
            for temp_cluster in cluster(
                rotation_cluster, lambda f: f.temperature_c, settings.temperature_tolerance_c
            ):
                temp_part = f"|temp@{_anchor(f.temperature_c for f in temp_cluster)}"
                groups.append(
                    FrameGroup(config, key, key + rotation_part + temp_part, list(temp_cluster))
                )
    return groups
