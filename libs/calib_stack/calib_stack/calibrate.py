"""Calibration of a light frame with master frames (SPEC §7), a band of rows at a time.

``calibrated = (light − bias − dark × dark_scale) / (flat / flat_scale)``: on CMOS the
dark is a master dark of the light's exposure (``dark_scale`` 1, no bias); on CCD the
master dark is a rate per second (``dark_scale`` = the light's exposure) and the master
bias is subtracted. Without a flat nothing is divided. Flat pixels that are not
positive give NaN. Only one band of each input and of the output is in memory, so the
memory use depends on ``memory_limit_mb`` and the width, not on the height.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from astropy.io import fits

from calib_core.fitsheader import COMMENTARY_KEYWORDS, Header, is_structural
from calib_stack.fitsio import FrameImage, InvalidFitsError, open_image

_MIB = 1024 * 1024


class CalibrationInputError(InvalidFitsError):
    """The light and a master cannot be combined (different sizes)."""


def calibrate_light(
    light: str | os.PathLike,
    output: str | os.PathLike,
    *,
    dark: str | os.PathLike | None = None,
    flat: str | os.PathLike | None = None,
    bias: str | os.PathLike | None = None,
    dark_scale: float = 1.0,
    flat_scale: float = 1.0,
    cards: Sequence[tuple[str, object, str]] = (),
    memory_limit_mb: float = 32,
) -> tuple[int, int]:
    """Write the calibrated light (FITS or XISF) to ``output`` (float32 FITS: the light's
    header keywords, then ``cards``) and return its shape (height, width).

    The file is written next to ``output`` and renamed into place, so a reader never
    sees a partial file. Raises :class:`CalibrationInputError` when a master's size
    differs from the light's and :class:`InvalidFitsError` for an unreadable file.
    """
    if not (np.isfinite(dark_scale) and np.isfinite(flat_scale) and flat_scale > 0):
        raise ValueError(f"invalid scales: dark {dark_scale}, flat {flat_scale}")
    output = Path(output)
    with ExitStack() as files:
        image = files.enter_context(open_image(light))
        masters = {
            name: files.enter_context(open_image(path))
            for name, path in (("bias", bias), ("dark", dark), ("flat", flat))
            if path is not None
        }
        for name, master in masters.items():
            if master.shape != image.shape:
                raise CalibrationInputError(
                    f"master {name} is {master.shape[1]}x{master.shape[0]}, the light is "
                    f"{image.shape[1]}x{image.shape[0]}",
                    master.path,
                )
        height, width = image.shape
        band_rows = _band_rows(width, height, len(masters), memory_limit_mb)
        header = _output_header(image.header, height, width, cards)
        fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        os.close(fd)
        try:
            stream = fits.StreamingHDU(tmp, header)
            try:
                for y0 in range(0, height, band_rows):
                    y1 = min(height, y0 + band_rows)
                    stream.write(_calibrated_band(image, masters, y0, y1, dark_scale, flat_scale))
            finally:
                stream.close()
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return height, width


def _calibrated_band(
    image: FrameImage,
    masters: dict[str, FrameImage],
    y0: int,
    y1: int,
    dark_scale: float,
    flat_scale: float,
) -> np.ndarray:
    band = image.read_rows(y0, y1)
    if "bias" in masters:
        band -= masters["bias"].read_rows(y0, y1)
    if "dark" in masters:
        dark = masters["dark"].read_rows(y0, y1)
        if dark_scale != 1.0:
            dark *= np.float32(dark_scale)
        band -= dark
    if "flat" in masters:
        flat = masters["flat"].read_rows(y0, y1)
        if flat_scale != 1.0:
            flat /= np.float32(flat_scale)
        flat[~(flat > 0)] = np.nan  # not positive (or NaN): no valid pixel
        band /= flat
    return band.astype(">f4", copy=False)


def _band_rows(width: int, height: int, n_masters: int, memory_limit_mb: float) -> int:
    """Rows per band: the light band, one band per master, a big-endian copy and the
    float64 scratch of a read (the worst case of :meth:`FitsImage.read_rows`)."""
    per_row = width * (4 * (2 + n_masters) + 2 * 8)
    return int(min(height, max(1, memory_limit_mb * _MIB // per_row)))


def _output_header(
    light: Header, height: int, width: int, cards: Sequence[tuple[str, object, str]]
) -> fits.Header:
    header = fits.Header()
    header["SIMPLE"] = (True, "conforms to FITS standard")
    header["BITPIX"] = (-32, "32-bit float")
    header["NAXIS"] = 2
    header["NAXIS1"] = width
    header["NAXIS2"] = height
    for card in light.cards:
        try:
            if card.keyword in COMMENTARY_KEYWORDS:
                header.append(card)
            elif not is_structural(card.keyword):
                header[card.keyword] = (card.value, card.comment)
        except ValueError:
            continue  # not writable in FITS (an XISF value of non-ASCII text): left out
    for keyword, value, comment in cards:
        if keyword in COMMENTARY_KEYWORDS:
            header.append((keyword, value))
        else:
            header[keyword] = (value, comment)
    return header
