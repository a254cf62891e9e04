"""PNG previews of frames and masters (Pillow only)."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageDraw

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
    """Mean of ``factor`` x ``factor`` blocks (NaNs ignored), one block row at a
    time so memory stays small; edge blocks average the pixels they have.
    """
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
    height, width = image.shape
    factor = math.ceil(max(height, width) / max_size)
    if factor == 1:
        return image
    out_w = math.ceil(width / factor)
    out = np.empty((math.ceil(height / factor), out_w), dtype=np.float32)
    padded = np.full((factor, out_w * factor), np.nan, dtype=np.float32)
    for row in range(out.shape[0]):
        block = image[row * factor : (row + 1) * factor]
        padded[:] = np.nan
        padded[: block.shape[0], :width] = block
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks -> NaN
            out[row] = np.nanmean(padded.reshape(factor, out_w, factor), axis=(0, 2))
    return out


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
