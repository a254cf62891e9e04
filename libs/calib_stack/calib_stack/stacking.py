"""Memory-bounded stacking of FITS or XISF frames into a master, band of rows by band.

Only one band of every frame is in memory at a time (plus the output image),
so the memory use depends on ``memory_limit_mb``, not on the number of frames.
Each output pixel depends only on the same pixel of the inputs, so the result
is bit-identical whatever the band height or thread count.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np

from calib_stack.fitsio import FrameImage, InvalidFitsError, open_image
from calib_stack.kernels import METHODS, combine_into

_MIB = 1024 * 1024


class _CubeBuffer:
    """The band cube's memory, kept from one stack to the next.

    Fresh memory costs a page fault per page on first touch, which on virtual machines
    runs to seconds per gigabyte; a stacker reuses one buffer, at most the size its
    memory limit allows, instead. A stack that starts while another holds the buffer
    (stacks on several threads) gets memory of its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = np.empty(0, dtype=np.float32)

    @contextmanager
    def take(self, size: int) -> Iterator[np.ndarray]:
        if not self._lock.acquire(blocking=False):
            yield np.empty(size, dtype=np.float32)
            return
        try:
            if self._buffer.size < size:
                self._buffer = np.empty(0, dtype=np.float32)  # let the old one go first
                self._buffer = np.empty(size, dtype=np.float32)
            yield self._buffer[:size]
        finally:
            self._lock.release()


_cube_buffer = _CubeBuffer()


class ShapeMismatchError(InvalidFitsError):
    """Frames of one stack differ in size; ``paths`` are the odd ones out."""

    def __init__(self, message: str, paths: Sequence[str]):
        super().__init__(message)
        self.paths = list(paths)


@dataclass(frozen=True)
class StackResult:
    image: np.ndarray
    """float32 master image (height, width)."""
    rejected_fraction: float
    """Fraction of the input pixel values rejected by sigma clipping."""
    n_frames: int
    shape: tuple[int, int]
    """(height, width)."""


def stack_files(
    paths: Sequence[str | os.PathLike],
    *,
    method: str,
    sigma: float = 3.0,
    maxiters: int = 5,
    memory_limit_mb: int = 1024,
    subtract: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    dark_rate: str | os.PathLike | None = None,
    exposures: Sequence[float] | None = None,
    normalise: bool = False,
    progress: Callable[[float], None] | None = None,
) -> StackResult:
    """Stack FITS or XISF frames into a master image.

    Each frame is preprocessed as ``(frame - subtract) / exposure`` (CCD dark:
    a rate per second) or ``(frame - subtract) / median(frame - subtract)``
    (``normalise``, flats; the master is then scaled to median 1.0), and the
    ``dark_rate`` master (CCD: a bias-subtracted rate per second), when given, is
    subtracted too, scaled by each frame's exposure (CCD flats). The
    frames are combined per pixel with ``method`` (see :mod:`calib_stack.kernels`).
    ``subtract`` is one master for every frame, or one per frame (CMOS flats of several
    exposures, each with the dark of its exposure); each master is read once per band.
    All files are opened and their sizes compared before any stacking.
    """
    if not paths:
        raise ValueError("no frames to stack")
    if method not in METHODS:
        raise ValueError(f"unknown stacking method {method!r}; expected one of {METHODS}")
    if exposures is not None:
        if len(exposures) != len(paths):
            raise ValueError(f"{len(exposures)} exposures given for {len(paths)} frames")
        if not all(math.isfinite(e) and e > 0 for e in exposures):
            raise ValueError(f"exposures must be positive numbers, got {list(exposures)}")
    if exposures is not None and normalise and dark_rate is None:
        raise ValueError(
            "exposures divide frames unless normalising; with normalise they only scale dark_rate"
        )
    if dark_rate is not None and exposures is None:
        raise ValueError("dark_rate needs the frames' exposures")

    subtracted = _per_frame(subtract, len(paths))
    with ExitStack() as files:
        frames = [files.enter_context(open_image(path)) for path in paths]
        shape = _common_shape(frames)
        masters = {
            key: files.enter_context(open_image(key))
            for key in dict.fromkeys(subtracted)
            if key is not None
        }
        rate = files.enter_context(open_image(dark_rate)) if dark_rate is not None else None
        for calibration in (*masters.values(), rate):
            if calibration is not None and calibration.shape != shape:
                raise ShapeMismatchError(
                    f"master {calibration.path} is {_size(calibration.shape)},"
                    f" frames are {_size(shape)}",
                    [str(calibration.path)],
                )
        dark_seconds = list(exposures) if rate is not None else None

        height, width = shape
        band_rows = _band_rows(len(frames), height, width, memory_limit_mb, len(masters) + 1)
        bands = [(y0, min(height, y0 + band_rows)) for y0 in range(0, height, band_rows)]
        report = _Progress(len(bands) + (len(frames) if normalise else 0), progress)
        output = np.empty(shape, dtype=np.float32)

        divisors: list[float] | None = list(exposures) if exposures is not None else None
        if normalise:
            # ``output`` is free until the band pass, so it holds each frame in turn.
            divisors = []
            for i, frame in enumerate(frames):
                _preprocess_whole(
                    frame,
                    masters.get(subtracted[i]),
                    rate,
                    dark_seconds[i] if dark_seconds else 0.0,
                    bands,
                    output,
                )
                median = _finite_median(output)
                if not median > 0:
                    raise InvalidFitsError(
                        f"flat frame has median {median} after subtraction; cannot normalise",
                        frame.path,
                    )
                divisors.append(median)
                report.step()

        rejected = 0
        with _cube_buffer.take(len(frames) * band_rows * width) as cube_buffer:
            for y0, y1 in bands:
                cube = cube_buffer[: len(frames) * (y1 - y0) * width].reshape(
                    len(frames), y1 - y0, width
                )
                master_bands = {key: master.read_rows(y0, y1) for key, master in masters.items()}
                rate_band = rate.read_rows(y0, y1) if rate is not None else None
                for i, frame in enumerate(frames):
                    _preprocess(
                        frame,
                        y0,
                        y1,
                        master_bands.get(subtracted[i]),
                        rate_band,
                        dark_seconds[i] if dark_seconds else 0.0,
                        divisors[i] if divisors else None,
                        cube[i],
                    )
                rejected += combine_into(cube, output[y0:y1], method, sigma, maxiters)
                report.step()

    if normalise:
        median = _finite_median(output.copy())
        if not median > 0:
            raise ValueError(f"stacked flat has median {median}; cannot normalise to 1.0")
        output /= median
    return StackResult(
        image=output,
        rejected_fraction=rejected / (len(frames) * height * width),
        n_frames=len(frames),
        shape=shape,
    )


def _per_frame(
    subtract: str | os.PathLike | Sequence[str | os.PathLike] | None, count: int
) -> list[str | None]:
    """The master subtracted from each frame (as text, the key of its open file)."""
    if subtract is None or isinstance(subtract, str | os.PathLike):
        return [None if subtract is None else os.fspath(subtract)] * count
    if len(subtract) != count:
        raise ValueError(f"{len(subtract)} masters to subtract given for {count} frames")
    return [os.fspath(p) for p in subtract]


def _common_shape(frames: Sequence[FrameImage]) -> tuple[int, int]:
    """The shape shared by all frames; ShapeMismatchError naming the odd ones."""
    counts = Counter(frame.shape for frame in frames)
    shape = counts.most_common(1)[0][0]
    odd = [frame for frame in frames if frame.shape != shape]
    if odd:
        listing = ", ".join(f"{frame.path} ({_size(frame.shape)})" for frame in odd)
        raise ShapeMismatchError(
            f"frames differ in size: {counts[shape]} of {len(frames)} are {_size(shape)};"
            f" odd frames: {listing}",
            [str(frame.path) for frame in odd],
        )
    return shape


def _size(shape: tuple[int, int]) -> str:
    return f"{shape[1]}x{shape[0]}"


def _band_rows(
    n_frames: int, height: int, width: int, memory_limit_mb: int, n_masters: int = 2
) -> int:
    """Rows per band so the band cube plus working copies fit beside the output."""
    budget = memory_limit_mb * _MIB - height * width * 4
    per_row = width * (
        4 * n_frames  # the float32 cube
        + n_masters * 4  # the master bands (subtracted masters, dark rate)
        + 2 * 8  # one frame band being read: raw + float64 scaling (worst case)
    )
    return int(min(height, max(1, budget // per_row)))


def _preprocess(
    frame: FrameImage,
    y0: int,
    y1: int,
    master_band: np.ndarray | None,
    rate_band: np.ndarray | None,
    dark_seconds: float,
    divisor: float | None,
    out: np.ndarray,
) -> None:
    """``out = (frame rows - master_band - rate_band × dark_seconds) / divisor`` in float32."""
    frame.read_rows_into(y0, y1, out)
    if master_band is not None:
        out -= master_band
    if rate_band is not None:
        out -= rate_band * np.float32(dark_seconds)
    if divisor is not None:
        np.divide(out, np.float32(divisor), out=out)


def _preprocess_whole(
    frame: FrameImage,
    master: FrameImage | None,
    rate: FrameImage | None,
    dark_seconds: float,
    bands: Sequence[tuple[int, int]],
    out: np.ndarray,
) -> None:
    for y0, y1 in bands:
        master_band = master.read_rows(y0, y1) if master is not None else None
        rate_band = rate.read_rows(y0, y1) if rate is not None else None
        _preprocess(frame, y0, y1, master_band, rate_band, dark_seconds, None, out[y0:y1])


def _finite_median(values: np.ndarray) -> float:
    """Median of the finite values (mean of the middle two for an even count).

    Partitions ``values`` in place (no copy): non-finite values become NaN,
    which numpy's partition puts last.
    """
    flat = values.reshape(-1)
    flat[~np.isfinite(flat)] = np.nan
    count = int(np.count_nonzero(~np.isnan(flat)))
    if count == 0:
        return math.nan
    middle = count // 2
    if count % 2:
        flat.partition(middle)
        return float(flat[middle])
    flat.partition((middle - 1, middle))
    return (float(flat[middle - 1]) + float(flat[middle])) / 2


class _Progress:
    def __init__(self, total: int, callback: Callable[[float], None] | None):
        self._total = total
        self._done = 0
        self._callback = callback

    def step(self) -> None:
        self._done += 1
        if self._callback is not None:
            self._callback(self._done / self._total)
