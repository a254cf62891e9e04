"""Pixel data of FITS frames, read a band of rows at a time; :func:`open_image` opens a
FITS or an XISF frame (:mod:`calib_stack.xisfio`), told by its signature.

Where the image is and what its header says comes from :mod:`calib_core.fitsheader`
(the primary HDU, the first image extension, or a tile-compressed image); pixel data is
read a band of rows at a time so stacking memory stays bounded whatever the number of
frames.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from astropy.io import fits

from calib_core.fitsheader import ImageLayout, InvalidFitsError, read_image_layout
from calib_core.imagefile import kind_of
from calib_stack.rowimage import RowImage
from calib_stack.xisfio import XisfImage

__all__ = ["FitsImage", "FrameImage", "InvalidFitsError", "XisfImage", "open_image", "read_image"]


class FitsImage(RowImage):
    """An open FITS frame whose pixels are read a band of rows at a time.

    Use ``with FitsImage.open(path) as image: image.read_rows(y0, y1)``.
    Uncompressed data is read straight from the file (no memory map, so pages
    of frames already stacked do not count against the process); compressed
    data decompresses only the tiles covering the requested rows.
    """

    def __init__(self, path: Path, layout: ImageLayout, file: BinaryIO | None):
        self.path = path
        self.header = layout.header
        self._layout = layout
        self._file = file
        self.shape: tuple[int, int] = (self.header["NAXIS2"], self.header["NAXIS1"])
        bitpix = self.header["BITPIX"]
        self._bzero = float(self.header.get("BZERO", 0.0))
        self._bscale = float(self.header.get("BSCALE", 1.0))
        blank = self.header.get("BLANK") if bitpix > 0 else None
        self._blank = blank if isinstance(blank, int) and not isinstance(blank, bool) else None
        self.dtype = _logical_dtype(bitpix, self._bscale, self._bzero)
        self._raw_dtype = np.dtype(f">{'f' if bitpix < 0 else 'i'}{abs(bitpix) // 8}")
        if bitpix == 8:
            self._raw_dtype = np.dtype(np.uint8)

    @classmethod
    def open(cls, path: str | os.PathLike) -> FitsImage:
        path = Path(path)
        try:
            file = path.open("rb")
        except OSError as exc:
            raise InvalidFitsError(f"cannot open: {exc.strerror or exc}", path) from exc
        try:
            try:
                layout = read_image_layout(file)
            except InvalidFitsError as error:
                raise InvalidFitsError(str(error), path) from error
            if layout.compressed:
                file.close()
                file = None
            return cls(path, layout, file)
        except BaseException:
            if file is not None:
                file.close()
            raise

    @property
    def compressed(self) -> bool:
        """Tile-compressed: reading rows decompresses the tiles that hold them."""
        return self._layout.compressed

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_rows_into(self, y0: int, y1: int, out: np.ndarray) -> None:
        """Rows ``y0`` to ``y1`` (exclusive), scaled (BZERO/BSCALE), BLANK -> NaN, written
        into ``out`` (float32, rows x width), in one pass
        without a float copy when the stored values are exact in float32 (integer
        frames, float32 masters): a stack reads every frame band this way."""
        height, width = self.shape
        if not 0 <= y0 <= y1 <= height:
            raise ValueError(f"row range [{y0}, {y1}) outside image of height {height}")
        try:
            raw = (
                self._read_compressed(y0, y1) if self._layout.compressed else self._read_raw(y0, y1)
            )
        except InvalidFitsError:
            raise
        except Exception as exc:  # astropy/zlib/OS errors on a damaged file
            raise InvalidFitsError(f"cannot read image rows {y0}-{y1}: {exc}", self.path) from exc
        if self._exact_in_float32(raw) and self._bscale == 1.0 and self._blank is None:
            np.add(raw, np.float32(self._bzero), out=out, casting="unsafe")
        else:
            out[...] = self._to_float32(raw)

    def _exact_in_float32(self, raw: np.ndarray) -> bool:
        small_type = raw.dtype.itemsize <= 2 or (raw.dtype.kind == "f" and raw.dtype.itemsize == 4)
        return small_type and self._bscale == 1.0 and self._bzero.is_integer()

    def _read_raw(self, y0: int, y1: int) -> np.ndarray:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        width = self.shape[1]
        raw = np.empty((y1 - y0, width), dtype=self._raw_dtype)
        self._file.seek(self._layout.data_offset + y0 * width * raw.itemsize)
        if self._file.readinto(raw.reshape(-1).view(np.uint8)) != raw.nbytes:
            raise InvalidFitsError("truncated image data", self.path)
        return raw

    def _read_compressed(self, y0: int, y1: int) -> np.ndarray:
        # Opened per call: astropy memory-maps the compressed table, and keeping
        # it open would let every decompressed band's pages accumulate in RSS.
        with fits.open(self.path, memmap=True, do_not_scale_image_data=True) as hdul:
            section = hdul[self._layout.hdu_index].section
            extra = (0,) * (self.header["NAXIS"] - 2)
            return np.asarray(section[extra + (slice(y0, y1), slice(None))])

    def _to_float32(self, raw: np.ndarray) -> np.ndarray:
        work = raw.astype(np.float32 if self._exact_in_float32(raw) else np.float64)
        if self._bscale != 1.0:
            work *= self._bscale
        if self._bzero != 0.0:
            work += self._bzero
        if self._blank is not None:
            work[raw == self._blank] = np.nan
        return work if work.dtype == np.float32 else work.astype(np.float32)


def _logical_dtype(bitpix: int, bscale: float, bzero: float) -> np.dtype:
    """The dtype astropy would present for this BITPIX/BSCALE/BZERO."""
    if bscale == 1.0 and bitpix > 8 and bzero == 2 ** (bitpix - 1):
        return np.dtype(f"uint{bitpix}")
    if bscale != 1.0 or bzero != 0.0:
        return np.dtype(np.float64 if bitpix in (32, 64, -64) else np.float32)
    return np.dtype(
        {8: "uint8", 16: "int16", 32: "int32", 64: "int64"}.get(bitpix, f"float{-bitpix}")
    )


FrameImage = FitsImage | XisfImage


def open_image(path: str | os.PathLike) -> FrameImage:
    """The FITS or XISF frame at ``path``, told by its first bytes (not its name)."""
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as exc:
        raise InvalidFitsError(f"cannot open: {exc.strerror or exc}", path) from exc
    try:
        kind = kind_of(file.read(4))
    except BaseException:
        file.close()
        raise
    if kind == "XISF":
        return XisfImage.open(path, file)
    file.close()
    return FitsImage.open(path)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The whole image (FITS or XISF) as float32 (see :meth:`FitsImage.read_rows`)."""
    with open_image(path) as image:
        return image.read_rows(0, image.shape[0])
