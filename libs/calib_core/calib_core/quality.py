"""Quality gates (SPEC §5, "Curation: held frames"): which frames of a stacking job are
held out of its master, judged on robust statistics measured on each frame.

Pure rules over measurements; the numerics measure (``calib_stack.framestats``).

- **shape**: a frame of another size than most of the job's frames.
- **level** (darks, bias): a frame whose median lies more than ``gate_sigma`` robust
  sigmas from the group's median, where a robust sigma is the larger of the frames'
  typical pixel noise (1.4826 × MAD) and the spread of the frames' medians
  (1.4826 × their MAD). A light leak or an offset jump moves the whole frame by many
  pixel sigmas; frames of one session differ by a small fraction of one. The level
  gate needs three frames: with two, neither can be told to be the odd one.
- **flat level**: a flat whose median is below ``flat_median_min_fraction`` or above
  ``flat_median_max_fraction`` of full scale (too dim, or in the non-linear range).
- **saturation** (flats): more than ``flat_saturated_max_fraction`` of the pixels at
  full scale.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from calib_core.models import FrameType
from calib_core.settings import CalibrationSettings

ROBUST_SIGMA_PER_MAD = 1.4826
LEVEL_GATE_MIN_FRAMES = 3


@dataclass(frozen=True)
class FrameMeasurement:
    """Robust statistics of one frame (on a subsample of its pixels)."""

    width: int
    height: int
    median: float
    noise: float
    """1.4826 × the median absolute deviation of the pixels."""
    saturated_fraction: float
    """Fraction of the pixels at full scale."""
    full_scale: float
    """The largest value the frame's data type holds for a camera (65535 for 16 bits)."""


def _size(m: FrameMeasurement) -> str:
    return f"{m.width}x{m.height}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _shape_failures(measured: Sequence[FrameMeasurement]) -> dict[int, str]:
    counts = Counter((m.width, m.height) for m in measured)
    common = min(counts, key=lambda shape: (-counts[shape], shape))
    size = f"{common[0]}x{common[1]}"
    return {
        i: f"shape gate: frame is {_size(m)}, the group's frames are {size}"
        for i, m in enumerate(measured)
        if (m.width, m.height) != common
    }


def _level_failures(
    measured: dict[int, FrameMeasurement], frame_type: FrameType, sigma: float
) -> dict[int, str]:
    if len(measured) < LEVEL_GATE_MIN_FRAMES:
        return {}
    medians = [m.median for m in measured.values()]
    center = median(medians)
    spread = ROBUST_SIGMA_PER_MAD * median(abs(v - center) for v in medians)
    robust_sigma = max(median(m.noise for m in measured.values()), spread)
    if not robust_sigma > 0:
        return {}
    failures = {}
    for i, m in measured.items():
        distance = abs(m.median - center) / robust_sigma
        if distance > sigma:
            failures[i] = (
                f"{frame_type.value} level gate: median {m.median:.6g} ADU is "
                f"{distance:.3g} robust sigmas from the group's {center:.6g} ADU "
                f"(robust sigma {robust_sigma:.3g} ADU, limit {sigma:g})"
            )
    return failures


def _flat_failures(m: FrameMeasurement, settings: CalibrationSettings) -> str | None:
    if m.saturated_fraction > settings.flat_saturated_max_fraction:
        return (
            f"saturation gate: {_percent(m.saturated_fraction)} of the pixels at full scale "
            f"({m.full_scale:g} ADU), limit {_percent(settings.flat_saturated_max_fraction)}"
        )
    level = m.median / m.full_scale
    low, high = settings.flat_median_min_fraction, settings.flat_median_max_fraction
    if not low <= level <= high:
        return (
            f"flat level gate: median {m.median:.6g} ADU is {_percent(level)} of full scale "
            f"({m.full_scale:g} ADU), allowed {_percent(low)} to {_percent(high)}"
        )
    return None


def gate_failures(
    frame_type: FrameType | str,
    measured: Sequence[FrameMeasurement],
    settings: CalibrationSettings,
) -> dict[int, str]:
    """The frames (by index into ``measured``) that fail a gate, with the reason: the
    gate, the measured value and the threshold. None fail while gates are off."""
    if not settings.quality_gates_enabled or not measured:
        return {}
    frame_type = FrameType(frame_type)
    failures = _shape_failures(measured)
    for i, m in enumerate(measured):
        if i not in failures and not math.isfinite(m.median):
            failures[i] = "pixel gate: the frame has no finite pixel"
    rest = {i: m for i, m in enumerate(measured) if i not in failures}
    if frame_type == FrameType.FLAT:
        for i, m in rest.items():
            if (reason := _flat_failures(m, settings)) is not None:
                failures[i] = reason
    else:
        failures.update(_level_failures(rest, frame_type, settings.gate_sigma))
    return dict(sorted(failures.items()))


def held_for_deleted_master(master_id: str) -> str:
    """Why the frames of a deleted master are held."""
    return f"source of deleted master {master_id}"
