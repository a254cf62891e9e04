"""Pixel data of XISF frames (N.I.N.A., PixInsight), read a band of rows at a time.

Where the image is and how it is stored comes from :mod:`calib_core.xisfheader`.
Uncompressed samples are read straight from the file, like a FITS frame's. A compressed
block (zlib, LZ4, LZ4HC, Zstandard) is decompressed once, on the first read, into an
anonymous temporary file beside the frame (zlib and Zstandard a chunk at a time, never
past the size the header declares), so a stack of many compressed frames holds one band
of each in memory, not whole frames. Shuffled bytes are put back in order a band at a
time: a band's samples are a run of each of the block's byte planes.
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

import lz4.block
import numpy as np
import zstandard

from calib_core.fitsheader import InvalidFitsError
from calib_core.imagefile import read_image_layout
from calib_core.xisfheader import FULL_SCALE_ADU, InvalidXisfError, XisfLayout
from calib_stack.rowimage import RowImage

_CHUNK = 4 * 1024 * 1024


class XisfImage(RowImage):
    """An open XISF frame whose pixels are read a band of rows at a time (the interface
    of :class:`calib_stack.fitsio.FitsImage`)."""

    def __init__(self, path: Path, layout: XisfLayout, file: BinaryIO):
        self.path = path
        self.header = layout.header
        self.shape: tuple[int, int] = (layout.height, layout.width)
        self._layout = layout
        self._file = file
        self._samples: BinaryIO | None = file if layout.codec is None else None
        self._samples_offset = layout.data_offset if layout.codec is None else 0
        order = ">" if layout.big_endian else "<"
        self.dtype = np.dtype(f"{order}{layout.sample_kind}{layout.sample_bytes}")

    @classmethod
    def open(cls, path: Path, file: BinaryIO) -> XisfImage:
        """The XISF frame in ``file``, open at ``path`` (closed if it is not readable)."""
        try:
            layout = read_image_layout(file)
        except InvalidFitsError as error:
            file.close()
            raise InvalidXisfError(str(error), path) from error
        except BaseException:
            file.close()
            raise
        assert isinstance(layout, XisfLayout)  # the caller saw the XISF signature
        return cls(path, layout, file)

    def close(self) -> None:
        if self._samples is not None and self._samples is not self._file:
            self._samples.close()
        self._samples = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_rows_into(self, y0: int, y1: int, out: np.ndarray) -> None:
        """Rows ``y0`` to ``y1`` (exclusive) into ``out``: integer samples as stored, float
        samples from their bounds to ADU (PixInsight's 0..1 to 0..65535)."""
        height, width = self.shape
        if not 0 <= y0 <= y1 <= height:
            raise ValueError(f"row range [{y0}, {y1}) outside image of height {height}")
        try:
            raw = self._read_band(y0 * width, y1 * width)
        except InvalidXisfError:
            raise
        except (OSError, ValueError, RuntimeError, zlib.error, zstandard.ZstdError) as exc:
            raise InvalidXisfError(f"cannot read image rows {y0}-{y1}: {exc}", self.path) from exc
        out[...] = raw.reshape(y1 - y0, width)
        if self._layout.bounds is not None:
            low, high = self._layout.bounds
            out -= np.float32(low)
            out *= np.float32(FULL_SCALE_ADU / (high - low))

    def _read_band(self, first: int, end: int) -> np.ndarray:
        """Samples ``first`` to ``end`` (exclusive) in file order."""
        samples = self._decompressed()
        size = self._layout.sample_bytes
        count = end - first
        band = np.empty(count * size, dtype=np.uint8)
        if not self._layout.shuffled:
            _read_exactly(samples, self._samples_offset + first * size, band, self.path)
            return band.view(self.dtype)
        planes = band.reshape(size, count)
        total = self._layout.width * self._layout.height
        for plane in range(size):  # byte ``plane`` of every sample is stored together
            _read_exactly(samples, plane * total + first, planes[plane], self.path)
        return planes.T.copy().reshape(-1).view(self.dtype)

    def _decompressed(self) -> BinaryIO:
        if self._samples is not None:
            return self._samples
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        spool = tempfile.TemporaryFile(dir=self.path.parent)  # noqa: SIM115 (kept open)
        try:
            _decompress(self._file, self._layout, spool, self.path)
        except BaseException:
            spool.close()
            raise
        self._samples = spool
        return spool


def _read_exactly(file: BinaryIO, offset: int, into: np.ndarray, path: Path) -> None:
    file.seek(offset)
    if file.readinto(into) != into.nbytes:
        raise InvalidXisfError("truncated image data", path)


def _decompress(file: BinaryIO, layout: XisfLayout, out: BinaryIO, path: Path) -> None:
    """Write the block's decompressed bytes to ``out``; exactly the declared size, or
    :class:`InvalidXisfError`."""
    expected = layout.pixel_bytes
    file.seek(layout.data_offset)
    if layout.codec in ("lz4", "lz4hc"):
        block = file.read(layout.data_bytes)
        try:
            data = lz4.block.decompress(block, uncompressed_size=expected)
        except lz4.block.LZ4BlockError as error:
            raise InvalidXisfError(f"corrupt LZ4 data block: {error}", path) from error
        written = out.write(data)
    elif layout.codec == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(_Limited(file, layout.data_bytes))
        written = _copy(lambda: reader.read(_CHUNK), out, expected, path)
    else:
        inflater = zlib.decompressobj()
        compressed = _Limited(file, layout.data_bytes)

        def chunk() -> bytes:
            while not inflater.eof:
                source = inflater.unconsumed_tail or compressed.read(_CHUNK)
                if not source:
                    return inflater.flush()
                data = inflater.decompress(source, _CHUNK)
                if data:
                    return data
            return b""

        written = _copy(chunk, out, expected, path)
    if written != expected:
        raise InvalidXisfError(
            f"the {layout.codec} data block holds {written} bytes once decompressed, the "
            f"header declares {expected}",
            path,
        )


def _copy(read, out: BinaryIO, limit: int, path: Path) -> int:
    """Copy chunks from ``read`` until it returns nothing; never more than ``limit``."""
    written = 0
    while chunk := read():
        written += len(chunk)
        if written > limit:
            raise InvalidXisfError(
                f"the data block decompresses to more than the {limit} bytes declared", path
            )
        out.write(chunk)
    return written


class _Limited:
    """The next ``size`` bytes of a file, read in chunks."""

    def __init__(self, file: BinaryIO, size: int):
        self._file, self._left = file, size

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._file.read(size)
        self._left -= len(data)
        return data
