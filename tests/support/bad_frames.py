"""Frames that fail a quality gate (SPEC §6, curation), made from good N.I.N.A. files."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits

from calib_stack import synthetic


def brightened(data: bytes, by_adu: float) -> bytes:
    """The same frame with ``by_adu`` more on every pixel: a light leak in a dark, or (with
    tens of thousands) a saturated flat; its header unchanged."""
    with fits.open(io.BytesIO(data)) as hdul:
        header, pixels = hdul[0].header.copy(), hdul[0].data.astype(np.float64)
    return synthetic.fits_bytes(pixels + by_adu, header)
