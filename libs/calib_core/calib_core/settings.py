"""Per-observatory calibration settings (SPEC §3): defaults and validation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from calib_core.models import FrameType


class CalibrationSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    min_frames_for_master: int = 10
    camera_type: Literal["CMOS", "CCD"] = "CMOS"
    stacking_method: Literal["mean", "median", "sigma_clip"] = "sigma_clip"
    sigma_clip_value: float = 3.0
    sigma_clip_iterations: int = 5
    temperature_tolerance_c: float = 2.0
    dark_max_age_days: int = 30
    flat_max_age_days: int = 7
    bias_max_age_days: int = 90
    individual_frame_retention_days: int = 30
    master_retention_days: int = 180
    rotation_matching: Literal["ignore", "preferred", "required"] = "ignore"
    rotation_tolerance_deg: float = 1.0
    quality_gates_enabled: bool = True
    gate_sigma: float = 5.0
    flat_median_min_fraction: float = 0.02
    flat_median_max_fraction: float = 0.9
    flat_saturated_max_fraction: float = 0.001

    def max_age_days(self, frame_type: FrameType | str) -> int:
        """Max age of a master (and of the frames stacked into one) of that type."""
        return {
            FrameType.DARK: self.dark_max_age_days,
            FrameType.FLAT: self.flat_max_age_days,
            FrameType.BIAS: self.bias_max_age_days,
        }.get(FrameType(frame_type), self.dark_max_age_days)

    def method_params(self) -> dict[str, Any]:
        if self.stacking_method == "sigma_clip":
            return {"sigma": self.sigma_clip_value, "iterations": self.sigma_clip_iterations}
        return {}


@dataclass(frozen=True)
class _Range:
    kind: type
    low: float
    high: float


@dataclass(frozen=True)
class _Choice:
    options: tuple[str, ...]


@dataclass(frozen=True)
class _Flag:
    """true or false."""


RULES: dict[str, _Range | _Choice | _Flag] = {
    "min_frames_for_master": _Range(int, 3, 100),
    "camera_type": _Choice(("CMOS", "CCD")),
    "stacking_method": _Choice(("mean", "median", "sigma_clip")),
    "sigma_clip_value": _Range(float, 0.5, 10.0),
    "sigma_clip_iterations": _Range(int, 1, 20),
    "temperature_tolerance_c": _Range(float, 0.1, 20.0),
    "dark_max_age_days": _Range(int, 1, 3650),
    "flat_max_age_days": _Range(int, 1, 3650),
    "bias_max_age_days": _Range(int, 1, 3650),
    "individual_frame_retention_days": _Range(int, 1, 3650),
    "master_retention_days": _Range(int, 1, 3650),
    "rotation_matching": _Choice(("ignore", "preferred", "required")),
    "rotation_tolerance_deg": _Range(float, 0.0, 180.0),
    "quality_gates_enabled": _Flag(),
    "gate_sigma": _Range(float, 1.0, 1000.0),
    # apart, so that the band of a flat's median is never empty
    "flat_median_min_fraction": _Range(float, 0.0, 0.45),
    "flat_median_max_fraction": _Range(float, 0.5, 1.0),
    "flat_saturated_max_fraction": _Range(float, 0.0, 1.0),
}


class SettingsError(ValueError):
    """A setting was refused; ``field`` names it and the message gives the allowed values."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def describe_rule(rule: _Range | _Choice | _Flag) -> str:
    if isinstance(rule, _Flag):
        return "true or false"
    if isinstance(rule, _Choice):
        return "one of " + ", ".join(rule.options)
    kind = "an integer" if rule.kind is int else "a number"
    low, high = (int(rule.low), int(rule.high)) if rule.kind is int else (rule.low, rule.high)
    return f"{kind} from {low} to {high}"


def _check(field: str, value: Any) -> Any:
    rule = RULES.get(field)
    if rule is None:
        raise SettingsError(field, f"unknown setting '{field}'")
    refused = SettingsError(field, f"{field} must be {describe_rule(rule)} (got {value!r})")
    if isinstance(rule, _Flag):
        if not isinstance(value, bool):
            raise refused
        return value
    if isinstance(rule, _Choice):
        if not isinstance(value, str) or value not in rule.options:
            raise refused
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise refused
    if rule.kind is int and float(value) != int(value):
        raise refused
    if not rule.low <= value <= rule.high:
        raise refused
    return int(value) if rule.kind is int else float(value)


def apply_changes(current: CalibrationSettings, changes: dict[str, Any]) -> CalibrationSettings:
    """Return ``current`` with ``changes`` applied, or raise SettingsError for the first
    bad field."""
    values = msgspec.structs.asdict(current)
    for field, value in changes.items():
        values[field] = _check(field, value)
    return CalibrationSettings(**values)


def settings_from_document(document: dict[str, Any] | None) -> CalibrationSettings:
    """Stored settings (possibly partial, possibly from an older version) over the defaults."""
    if not document:
        return CalibrationSettings()
    known = {k: v for k, v in document.items() if k in RULES}
    return apply_changes(CalibrationSettings(), known)
