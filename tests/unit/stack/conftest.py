"""Fixtures writing small FITS frames in the layouts cameras and fpack produce."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits


def write_frame(
    path: Path, data: np.ndarray, layout: str = "uint16", cards: dict | None = None
) -> Path:
    """Write integer-valued ``data`` as a FITS frame; ``cards`` go to the primary header.

    Layouts: ``uint16`` (BZERO 32768), ``int16`` and ``float32`` primary images;
    ``extension``: float32 IMAGE extension behind an empty primary; ``rice``:
    RICE_1 tile-compressed uint16 extension (fpack style).
    """
    header = fits.Header(cards or {})
    if layout == "uint16":
        hdus = [fits.PrimaryHDU(np.asarray(data, dtype=np.uint16), header=header)]
    elif layout == "int16":
        hdus = [fits.PrimaryHDU(np.asarray(data, dtype=np.int16), header=header)]
    elif layout == "float32":
        hdus = [fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=header)]
    elif layout == "extension":
        hdus = [fits.PrimaryHDU(header=header), fits.ImageHDU(np.asarray(data, dtype=np.float32))]
    elif layout == "rice":
        compressed = fits.CompImageHDU(np.asarray(data, dtype=np.uint16), compression_type="RICE_1")
        hdus = [fits.PrimaryHDU(header=header), compressed]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture
def frame_writer(tmp_path: Path) -> Callable[..., Path]:
    """``frame_writer(name, data, layout="uint16", cards=None) -> path`` in tmp_path."""

    def write(name: str, data: np.ndarray, layout: str = "uint16", cards: dict | None = None):
        return write_frame(tmp_path / name, data, layout, cards)

    return write
