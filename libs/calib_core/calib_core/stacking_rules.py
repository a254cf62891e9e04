"""How a queued job is stacked (SPEC §5): whether it still has work, how its frames are
combined and what its master's header says about the preprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from calib_core.matching import Preprocessing
from calib_core.models import Frame, FrameType, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.triggers import minimum_frames

#: Triggers that queue a job by counting unclaimed frames, not at someone's request.
AUTOMATIC_TRIGGERS = (JobTrigger.REGISTRATION, JobTrigger.SWEEP)


def is_redundant(job: StackJob, frames: Sequence[Frame], settings: CalibrationSettings) -> bool:
    """True for an automatic job queued on a count of unclaimed frames that a master claimed
    meanwhile: too few of its frames are still new, so it would only repeat that master.
    Manual and retried jobs are always stacked."""
    unclaimed = sum(f.master_id is None for f in frames)
    return job.trigger in AUTOMATIC_TRIGGERS and unclaimed < settings.min_frames_for_master


def frames_needed(job: StackJob, settings: CalibrationSettings) -> int:
    """Frames a job must still have after the quality gates held some: an automatic job
    its threshold, a manual or retried one what a forced manual creation needs (someone
    asked for this master)."""
    if job.trigger in AUTOMATIC_TRIGGERS:
        return settings.min_frames_for_master
    return minimum_frames(settings, force=True)


def stacks_dark_rate(frame_type: FrameType, settings: CalibrationSettings) -> bool:
    """CCD darks stack into a dark current rate (ADU/s): each bias-subtracted frame is
    divided by its exposure, so that one master serves every exposure."""
    return frame_type == FrameType.DARK and settings.camera_type == "CCD"


@dataclass(frozen=True)
class StackRecipe:
    """How the (preprocessed) frames of a job are combined, pixel by pixel."""

    method: str
    sigma: float
    maxiters: int
    exposures: list[float] | None
    """Each frame's exposure, in order: divides a CCD dark into a rate, and scales a dark
    rate master to each frame; None when neither happens."""
    normalise: bool
    """Flats: each frame divided by its median, the master scaled to median 1.0."""


def stack_recipe(
    job: StackJob,
    frames: Sequence[Frame],
    settings: CalibrationSettings,
    calibration: Preprocessing,
) -> StackRecipe:
    by_exposure = stacks_dark_rate(job.frame_type, settings) or calibration.dark_rate is not None
    return StackRecipe(
        method=settings.stacking_method,
        sigma=settings.sigma_clip_value,
        maxiters=settings.sigma_clip_iterations,
        exposures=[f.exposure_s for f in frames] if by_exposure else None,
        normalise=job.frame_type == FrameType.FLAT,
    )


def preprocessing_cards(calibration: Preprocessing) -> list[tuple[str, Any, str]]:
    """FITS header cards naming the masters the sources were corrected with."""
    cards: list[tuple[str, Any, str]] = []
    if calibration.subtract is not None:
        master = calibration.subtract
        cards.append(("CALPRE", master.id, f"master {master.frame_type.value} subtracted"))
    if calibration.dark_by_frame:
        darks = sorted({m.id for m in calibration.dark_by_frame.values()})
        cards.append(("CALPRE", ",".join(darks), "master darks subtracted, by exposure"))
    if calibration.dark_rate is not None:
        cards.append(
            ("CALDARK", calibration.dark_rate.id, "master dark rate x exposure subtracted")
        )
    return cards
