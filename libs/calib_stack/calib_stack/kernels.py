"""Per-pixel combination of a frame cube: mean, median and sigma-clipped mean.

The cube is float32 ``(frames, rows, cols)``. Work is split into chunks of
consecutive pixels that run in parallel; inside a chunk the loops run frame by
frame across the chunk's pixels, so each pixel's sum is accumulated in frame
order (exactly like numpy's ``sum(axis=0)``) while the compiler vectorises over
pixels. Every pixel is independent, so results do not depend on the thread
count or on how the image is cut into bands.

Reference semantics on the finite values (checked by the unit tests):

- ``mean``       == ``np.nanmean(cube, axis=0)`` (float32 frame-order sum, so bit-identical)
- ``median``     == ``np.nanmedian(cube, axis=0)`` (middle pair averaged in float64)
- ``sigma_clip`` == ``astropy.stats.sigma_clip(cube, sigma, maxiters, axis=0,
  cenfunc="median", stdfunc="std").mean(axis=0)``, same bounds bit for bit

Non-finite values (NaN, +-inf) are ignored; a pixel without any finite value
becomes NaN. (For a single-pixel cube numpy sums pairwise rather than in frame
order, so there the means agree to float32 rounding rather than bit for bit.)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

METHODS = ("mean", "median", "sigma_clip")

_CHUNK = 256  # pixels per parallel work item; a 20-frame chunk fits in L1
_EPS = float(np.finfo(np.float64).eps)


class CombineResult(NamedTuple):
    image: np.ndarray
    """float32 (rows, cols) combined image."""
    rejected: int
    """Number of finite input values rejected by clipping (0 for mean/median)."""


def combine(cube: np.ndarray, method: str, sigma: float = 3.0, maxiters: int = 5) -> CombineResult:
    """Combine a ``(frames, rows, cols)`` cube along the frame axis."""
    cube = np.ascontiguousarray(cube, dtype=np.float32)
    if cube.ndim != 3:
        raise ValueError(f"cube must be 3-D (frames, rows, cols), got shape {cube.shape}")
    out = np.empty(cube.shape[1:], dtype=np.float32)
    rejected = combine_into(cube, out, method, sigma, maxiters)
    return CombineResult(out, rejected)


def combine_into(
    cube: np.ndarray, out: np.ndarray, method: str, sigma: float = 3.0, maxiters: int = 5
) -> int:
    """Like :func:`combine` but writes into ``out`` (a C-contiguous float32
    ``(rows, cols)`` array, e.g. a band of the master); returns the rejected count.
    """
    if method not in METHODS:
        raise ValueError(f"unknown stacking method {method!r}; expected one of {METHODS}")
    if cube.dtype != np.float32 or not cube.flags.c_contiguous or cube.ndim != 3:
        raise ValueError("cube must be a C-contiguous float32 array (frames, rows, cols)")
    if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape != cube.shape[1:]:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {cube.shape[1:]}")
    if cube.shape[0] == 0:
        raise ValueError("cannot combine an empty stack")
    frames = cube.reshape(cube.shape[0], -1)
    pixels = out.reshape(-1)
    if method == "mean":
        _mean_kernel(frames, pixels)
        return 0
    if method == "median":
        _median_kernel(frames, pixels)
        return 0
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if int(maxiters) != maxiters or maxiters < 1:
        raise ValueError(f"maxiters must be an integer >= 1, got {maxiters!r}")
    return int(_sigma_clip_kernel(frames, pixels, float(sigma), int(maxiters)))


@njit(cache=True)
def _kth_smallest(a, n, k):
    """Wirth/Devillard selection, as in astropy's ``wirth_select.c`` (permutes ``a``)."""
    lo = 0
    hi = n - 1
    while lo < hi:
        x = a[k]
        i = lo
        j = hi
        while True:
            while a[i] < x:
                i += 1
            while x < a[j]:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
            if i > j:
                break
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


@njit(cache=True)
def _median(a, n):
    if n % 2 == 0:
        return 0.5 * (_kth_smallest(a, n, n // 2) + _kth_smallest(a, n, n // 2 - 1))
    return _kth_smallest(a, n, (n - 1) // 2)


@njit(cache=True)
def _astropy_bounds(buf, count, sigma, maxiters):
    """Clipping bounds exactly as astropy's ``compute_sigma_clipped_bounds``
    (median centre, population std): the same float64 operations in the same
    order on the same permuted buffer, so the bounds are bit-identical.
    ``buf[:count]`` holds the finite values in frame order and is clobbered.
    """
    iteration = 0
    while True:
        centre = _median(buf, count)
        mean = 0.0
        for i in range(count):
            mean += buf[i]
        mean /= count
        var = 0.0
        for i in range(count):
            var += (buf[i] - mean) * (buf[i] - mean)
        std = np.sqrt(var / count)
        lower = centre - sigma * std
        upper = centre + sigma * std
        kept = 0
        for i in range(count):
            if buf[i] >= lower and buf[i] <= upper:
                buf[kept] = buf[i]
                kept += 1
        if kept == count or kept == 0:
            return lower, upper
        count = kept
        iteration += 1
        if iteration >= maxiters:
            return lower, upper


@njit(cache=True)
def _chunk_sums(frames, p0, p1, total, count):
    """Frame-order float32 sums and counts of the finite values of pixels [p0, p1).

    Non-finite values add 0.0, exactly as numpy's nanmean / masked mean do.
    """
    total[:] = 0.0
    count[:] = 0
    for i in range(frames.shape[0]):
        row = frames[i, p0:p1]  # a contiguous view lets LLVM vectorise over pixels
        for j in range(p1 - p0):
            v = row[j]
            finite = v - v == 0.0
            total[j] += v if finite else np.float32(0.0)
            count[j] += 1 if finite else 0


@njit(parallel=True, cache=True)
def _mean_kernel(frames, out):
    npix = out.shape[0]
    for c in prange((npix + _CHUNK - 1) // _CHUNK):
        p0 = c * _CHUNK
        p1 = min(npix, p0 + _CHUNK)
        total = np.empty(p1 - p0, np.float32)
        count = np.empty(p1 - p0, np.int32)
        _chunk_sums(frames, p0, p1, total, count)
        for j in range(p1 - p0):
            out[p0 + j] = np.float64(total[j]) / count[j] if count[j] > 0 else np.nan


@njit(parallel=True, cache=True)
def _median_kernel(frames, out):
    n = frames.shape[0]
    npix = out.shape[0]
    for c in prange((npix + _CHUNK - 1) // _CHUNK):
        p0 = c * _CHUNK
        p1 = min(npix, p0 + _CHUNK)
        buf = np.empty(n, np.float64)
        for p in range(p0, p1):
            count = 0
            for i in range(n):
                v = frames[i, p]
                if np.isfinite(v):
                    buf[count] = v
                    count += 1
            out[p] = _median(buf, count) if count > 0 else np.nan


@njit(parallel=True, cache=True)
def _sigma_clip_kernel(frames, out, sigma, maxiters):
    """Sigma-clipped mean per pixel; returns the number of rejected values.

    Fast path: if the first clipping pass provably rejects nothing, astropy
    stops after it and keeps every value, so the result is the plain mean. That
    holds when min and max lie inside median -+ sigma*std. We get mean/std
    vectorised over the chunk (in a different summation order than astropy, so
    with an error margin ``tol``) and avoid computing the median: it is >= L when
    fewer than half of the values are < L (and likewise for the upper side).
    Pixels that do not qualify (outliers, constant pixels, borderline values)
    take the exact replica of astropy's algorithm.
    """
    n = frames.shape[0]
    npix = out.shape[0]
    nchunks = (npix + _CHUNK - 1) // _CHUNK
    rejected_per_chunk = np.zeros(nchunks, np.int64)
    for c in prange(nchunks):
        p0 = c * _CHUNK
        p1 = min(npix, p0 + _CHUNK)
        m = p1 - p0
        total = np.empty(m, np.float32)
        count = np.empty(m, np.int32)
        mean = np.zeros(m, np.float64)
        var = np.zeros(m, np.float64)
        vmin = np.full(m, np.inf)
        vmax = np.full(m, -np.inf)
        lower = np.empty(m, np.float64)
        upper = np.empty(m, np.float64)
        n_below = np.zeros(m, np.int32)
        n_above = np.zeros(m, np.int32)
        buf = np.empty(n, np.float64)

        _chunk_sums(frames, p0, p1, total, count)
        for i in range(n):
            row = frames[i, p0:p1]
            for j in range(m):
                v = np.float64(row[j])
                finite = v - v == 0.0
                mean[j] += v if finite else 0.0
                vmin[j] = v if finite and v < vmin[j] else vmin[j]
                vmax[j] = v if finite and v > vmax[j] else vmax[j]
        for j in range(m):
            mean[j] = mean[j] / count[j] if count[j] > 0 else 0.0
        for i in range(n):
            row = frames[i, p0:p1]
            for j in range(m):
                v = np.float64(row[j])
                d = v - mean[j]
                var[j] += d * d if v - v == 0.0 else 0.0
        for j in range(m):
            k = max(count[j], 1)
            std = np.sqrt(var[j] / k)
            scale = max(abs(vmin[j]), abs(vmax[j])) + std
            tol = 8.0 * (k + 2) * _EPS * (1.0 + sigma) * scale
            lower[j] = vmax[j] - sigma * std + tol  # median must be >= this
            upper[j] = vmin[j] + sigma * std - tol  # median must be <= this
        for i in range(n):
            row = frames[i, p0:p1]
            for j in range(m):
                v = np.float64(row[j])
                finite = v - v == 0.0
                n_below[j] += 1 if finite and v < lower[j] else 0
                n_above[j] += 1 if finite and v > upper[j] else 0

        rejected = 0
        for j in range(m):
            k = count[j]
            if k == 0:
                out[p0 + j] = np.nan
                continue
            half = (k - 1) // 2
            if n_below[j] <= half and n_above[j] <= half:
                out[p0 + j] = np.float64(total[j]) / k
                continue
            p = p0 + j
            finite = 0
            for i in range(n):
                v = frames[i, p]
                if np.isfinite(v):
                    buf[finite] = v
                    finite += 1
            lo, hi = _astropy_bounds(buf, finite, sigma, maxiters)
            kept_total = np.float32(0.0)
            kept = 0
            for i in range(n):
                v = frames[i, p]
                if np.isfinite(v) and v >= lo and v <= hi:
                    kept_total += v
                    kept += 1
            rejected += k - kept
            out[p] = np.float64(kept_total) / kept if kept > 0 else np.nan
        rejected_per_chunk[c] = rejected
    return rejected_per_chunk.sum()
