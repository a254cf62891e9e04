"""Which master calibrates what (SPEC §5 preprocessing, §7 calibration of lights)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from calib_core.grouping import exposure_second
from calib_core.models import CURRENT_MASTER_STATUSES, Frame, FrameType
from calib_core.settings import CalibrationSettings
from calib_core.tolerance import angle_between, within
from calib_core.triggers import (
    CCD_DARK_DEFERRED_REASON,
    CCD_FLAT_DEFERRED_REASON,
    FLAT_DEFERRED_REASON,
)

#: The hardware a master must share with what it calibrates.
SHARED_HARDWARE = ("camera_name", "gain", "offset", "binning", "readout_mode")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def _rotation_distance(master: Frame, rotation_deg: float | None) -> float | None:
    """Degrees between the two rotations around the circle; 0 when neither has one (like
    temperatures, and like grouping, where frames without rotation form their own group)."""
    if master.rotation_deg is None or rotation_deg is None:
        return 0.0 if master.rotation_deg is None and rotation_deg is None else None
    return angle_between(master.rotation_deg, rotation_deg)


def find_master(
    masters: Sequence[Frame],
    *,
    frame_type: FrameType,
    target: Any,
    settings: CalibrationSettings,
) -> Frame | None:
    """The best current master of ``frame_type`` for ``target`` (a frame or its metadata).

    Hardware must match; darks and flats also need the temperature within tolerance
    (bias is temperature-independent); CMOS darks need the target's exposure (rounded
    to the second); flats need the filter and, per ``rotation_matching``, the rotation.
    Among candidates the newest wins (``preferred`` rotation: the closest rotation first).
    """
    candidates = []
    for master in masters:
        if not master.is_master or master.status not in CURRENT_MASTER_STATUSES:
            continue
        if master.frame_type != frame_type:
            continue
        if not all(_same(getattr(master, k), getattr(target, k)) for k in SHARED_HARDWARE):
            continue
        if frame_type != FrameType.BIAS and not within(
            master.temperature_c, target.temperature_c, settings.temperature_tolerance_c
        ):
            continue
        if (
            frame_type == FrameType.DARK
            and settings.camera_type == "CMOS"
            and exposure_second(master.exposure_s) != exposure_second(target.exposure_s)
        ):
            continue
        if frame_type == FrameType.FLAT and master.filter != target.filter:
            continue
        candidates.append(master)

    def newest(m: Frame) -> float:
        return m.creation_time.timestamp()

    if frame_type == FrameType.FLAT and settings.rotation_matching != "ignore":
        in_tolerance = [
            m
            for m in candidates
            if (d := _rotation_distance(m, target.rotation_deg)) is not None
            and d <= settings.rotation_tolerance_deg + 1e-9
        ]
        if settings.rotation_matching == "required":
            candidates = in_tolerance
        elif in_tolerance:
            in_tolerance.sort(
                key=lambda m: (_rotation_distance(m, target.rotation_deg), -newest(m))
            )
            return in_tolerance[0]
    candidates.sort(key=newest, reverse=True)
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class Preprocessing:
    """The masters a group's frames are corrected with before stacking."""

    subtract: Frame | None = None  # subtracted as it is (a bias, or a CMOS dark)
    dark_rate: Frame | None = None  # a CCD dark (ADU/s), subtracted × each frame's exposure
    dark_by_frame: dict[str, Frame] = field(default_factory=dict)
    """CMOS flats: the master dark of each flat's exposure, by flat id (``subtract`` is
    then None)."""

    @property
    def masters(self) -> list[Frame]:
        found = [m for m in (self.subtract, self.dark_rate) if m is not None]
        found += self.dark_by_frame.values()
        return list({m.id: m for m in found}.values())


def cmos_flat_darks(
    flats: Sequence[Frame], masters: Sequence[Frame], settings: CalibrationSettings
) -> tuple[dict[str, Frame], list[float]]:
    """CMOS flats of one group may differ in exposure (a flat wizard adapts it per filter
    and sky): each is dark-subtracted with the master dark of its own exposure. Returns the
    dark of each flat that has one (by flat id) and the exposures, rounded to the second,
    that no current master dark matches (their flats wait)."""
    darks: dict[str, Frame] = {}
    missing: set[float] = set()
    for flat in flats:
        dark = find_master(masters, frame_type=FrameType.DARK, target=flat, settings=settings)
        if dark is None:
            missing.add(exposure_second(flat.exposure_s))
        else:
            darks[flat.id] = dark
    return darks, sorted(missing)


def missing_darks_reason(exposures: Sequence[float]) -> str:
    """The deferral of CMOS flats, naming the exposures that lack a master dark."""
    listed = ", ".join(f"{e:g} s" for e in exposures)
    return f"{FLAT_DEFERRED_REASON} (flat exposure {listed})"


def preprocessing(
    frame_type: FrameType, sample: Any, masters: Sequence[Frame], settings: CalibrationSettings
) -> Preprocessing | str:
    """How a group of ``frame_type`` (represented by ``sample``) is preprocessed (SPEC §5),
    or why it must wait: flats lose a matching dark (on CCD: bias + dark rate × exposure),
    CCD darks lose a bias (and become rates), everything else is stacked as it is."""

    def best(kind: FrameType) -> Frame | None:
        return find_master(masters, frame_type=kind, target=sample, settings=settings)

    ccd = settings.camera_type == "CCD"
    if frame_type == FrameType.FLAT:
        dark = best(FrameType.DARK)
        if dark is None:
            return FLAT_DEFERRED_REASON
        if not ccd:
            return Preprocessing(subtract=dark)
        bias = best(FrameType.BIAS)
        return Preprocessing(subtract=bias, dark_rate=dark) if bias else CCD_FLAT_DEFERRED_REASON
    if frame_type == FrameType.DARK and ccd:
        bias = best(FrameType.BIAS)
        return Preprocessing(subtract=bias) if bias else CCD_DARK_DEFERRED_REASON
    return Preprocessing()


def prerequisite_type(frame_type: FrameType, settings: CalibrationSettings) -> FrameType | None:
    """The master a group of this type must be preprocessed with, if any."""
    if frame_type == FrameType.FLAT:
        return FrameType.DARK
    if frame_type == FrameType.DARK and settings.camera_type == "CCD":
        return FrameType.BIAS
    return None
