"""Robust statistics of a frame for the quality gates (:mod:`calib_core.quality`),
measured cheaply on a subsample of its rows.

About a quarter of a million pixels of whole rows, evenly spread over the frame, give the median
and the noise to a small fraction of the noise, whatever the frame's size; reading them
costs a few seeks in a file the stacker has just downloaded.
"""

from __future__ import annotations

import os

import numpy as np

from calib_core.quality import ROBUST_SIGMA_PER_MAD, FrameMeasurement
from calib_stack import imagestats
from calib_stack.fitsio import FitsImage, FrameImage, open_image

SAMPLE_PIXELS = 1 << 18
#: A pixel at or above this fraction of full scale counts as saturated (cameras of 12
#: or 14 bits scaled to 16 top out just below 65535).
SATURATION_FRACTION = 0.999


def full_scale(image: FrameImage) -> float:
    """The ceiling of a camera's values in this file: 255 for 8-bit data, else 65535 (16-bit
    cameras; wider integer and float files hold 16-bit camera data too)."""
    return 255.0 if image.dtype.itemsize == 1 else 65535.0


def _sample_rows(image: FrameImage) -> np.ndarray:
    height, width = image.shape
    step = max(1, height // max(1, SAMPLE_PIXELS // max(width, 1)))
    # a tile-compressed FITS decompresses its tiles per read: read it once (a compressed
    # XISF block is decompressed once, on its first read, so its rows read like any file's)
    if (isinstance(image, FitsImage) and image.compressed) or step == 1:
        return image.read_rows(0, height)[::step]
    rows = range(0, height, step)
    sample = np.empty((len(rows), width), dtype=np.float32)
    for i, y in enumerate(rows):
        image.read_rows_into(y, y + 1, sample[i : i + 1])
    return sample


def measure_frame(path: str | os.PathLike) -> FrameMeasurement:
    """Median, noise (1.4826 × MAD) and saturated fraction of a frame's sampled finite
    pixels; NaN statistics for a frame without any."""
    with open_image(path) as image:
        height, width = image.shape
        scale = full_scale(image)
        sample = _sample_rows(image)
    count, _, _, _, median = imagestats.summarize(sample)
    if not count:
        return FrameMeasurement(width, height, float("nan"), float("nan"), 0.0, scale)
    noise = ROBUST_SIGMA_PER_MAD * imagestats.median_abs_deviation(sample, median)
    # count_above is strict: one ADU below the saturation level
    saturated = imagestats.count_above(sample, SATURATION_FRACTION * scale - 1e-3) / count
    return FrameMeasurement(width, height, median, noise, saturated, scale)
