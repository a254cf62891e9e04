"""PNG previews of frames and masters (Pillow only)."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from calib_stack import imagestats

STRETCH_PERCENTILES = (0.5, 99.5)
ASINH_SOFTENING = 10.0


def preview_png(image: np.ndarray, max_size: int = 800) -> bytes:
    """8-bit grayscale PNG, block-mean downsampled to at most ``max_size`` on
    the longer side (aspect kept) and asinh-stretched between percentiles.
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    small = _block_mean(np.asarray(image, dtype=np.float32), max_size)
    finite = np.isfinite(small)
    scaled = np.zeros(small.shape, dtype=np.float64)
    if finite.any():
        low, high = np.percentile(small[finite], STRETCH_PERCENTILES)
        if high > low:
            scaled[finite] = np.clip((small[finite] - low) / (high - low), 0.0, 1.0)
            scaled = np.arcsinh(ASINH_SOFTENING * scaled) / np.arcsinh(ASINH_SOFTENING)
        else:
            scaled[finite] = 0.5
    return _png(Image.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L"))


def histogram_png(image: np.ndarray, bins: int = 256, width: int = 512, height: int = 200) -> bytes:
    """Histogram of the finite pixel values as a PNG: bars of log10(1 + count)."""
    values = np.asarray(image, dtype=np.float32)
    values = values[np.isfinite(values)]
    picture = Image.new("L", (width, height), color=255)
    if values.size:
        low, high = float(values.min()), float(values.max())
        if high <= low:
            low, high = low - 0.5, high + 0.5
        counts, _ = np.histogram(values, bins=bins, range=(low, high))
        heights = np.log10(1.0 + counts)
        heights = heights / heights.max() * (height - 1)
        draw = ImageDraw.Draw(picture)
        for index, bar in enumerate(heights):
            if bar > 0:
                x0 = index * width // bins
                x1 = max(x0, (index + 1) * width // bins - 1)
                draw.rectangle((x0, height - 1 - round(bar), x1, height - 1), fill=40)
    return _png(picture)


def _block_mean(image: np.ndarray, max_size: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks (NaNs ignored, as ``np.nanmean``) with
    the factor that brings the longer side to at most ``max_size``; edge blocks
    average the pixels they have.
    """
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
    factor = math.ceil(max(image.shape) / max_size)
    if factor == 1:
        return image
    return imagestats.block_mean(image, factor)


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
