"""Whole-image statistics for masters and previews, as serial numba passes.

Each function gives numpy's result bit for bit (the unit tests check it), with
``finite`` the finite float32 values in C order:

- :func:`summarize` -> the count, min, max, ``np.sum(finite, dtype=np.float64)``
  and ``np.median(finite)``. The sum follows numpy's order (it casts 8192 values
  at a time to float64 and adds each batch's pairwise sum), so
  ``total / count == np.mean(finite, dtype=np.float64)``. An even count's median
  averages the middle pair in float32, as numpy does.
- :func:`median_abs_deviation` == ``np.median(np.abs(finite - np.float32(center)))``
- :func:`count_above` == ``np.count_nonzero(finite > threshold)``. numpy compares
  a float32 array with a Python float in float32.
- :func:`block_mean` == ``np.nanmean`` over ``factor`` x ``factor`` blocks padded
  with NaN (the order of a float32 sum changes its result, so it is numpy's order too).

Values are compared as integer keys: a float32's bits, with the magnitude bits
flipped for negative numbers, order like the values (-0 just before +0), and
integer compares vectorise. Non-finite values get a key above all others.

A median is an exact selection, usually in one pass and without a copy of the
image (Floyd-Rivest). A sorted sample of 32768 values gives points 2 and 3
standard errors of the sample median's rank either side of it. One pass counts
the keys below each point and copies out the keys between the two inner points
(about 1% of them), where the median usually is; ``np.partition`` then selects
it. When it is not there (a misleading sample, 1 time in 20 for random data),
the counts name the window between two points that holds it. That window is
copied out in a second pass, unless all its keys are equal (ties). So a bad
sample makes the work slower, never the result wrong.

The kernels are serial (these passes are memory-bound) and release the GIL, so
the stacker can compute the statistics beside the preview and the FITS writer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_CHUNK = 8192  # values per step of a pass; also numpy's ufunc buffer, the batches of its sum
_SAMPLE = 1 << 15  # sampled values that place the counting points
_SPREADS = (-3, -2, 2, 3)  # counting points, in standard errors of the sample median's rank
_COPY_FROM, _COPY_TO = 1, 2  # the first pass copies the keys between these two points
_EXPONENT = 0x7F800000  # float32 exponent bits: all set for inf and NaN
_END = 0x7F800001  # just above the key of +inf: keys from here on stand for non-finite values
_EXCLUDED = 0x7FFFFFFF  # the key given to non-finite values
_LOWEST = -0x80000000  # below every key


@njit(cache=True, nogil=True)
def _pairwise_block(a, start, n, zero):
    """numpy's pairwise sum of at most 128 values: 8 accumulators, then the rest.
    Sums in the type of ``zero`` (float32 values add exactly into float64)."""
    values = a[start : start + n]  # slices let LLVM drop negative-index checks
    if n < 8:
        res = zero
        for i in range(n):
            res += values[i]
        return res
    r0, r1, r2, r3 = zero + values[0], zero + values[1], zero + values[2], zero + values[3]
    r4, r5, r6, r7 = zero + values[4], zero + values[5], zero + values[6], zero + values[7]
    end = n - n % 8
    for i in range(8, end, 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end, n):
        res += values[i]
    return res


@njit(cache=True, nogil=True)
def _pairwise_sum(a, start, n, zero):
    """numpy's pairwise summation of ``a[start:start + n]`` in the type of ``zero``:
    blocks of up to 128 values, halved at multiples of 8.

    numpy recurses; this walks the same tree with an explicit stack, because
    numba cannot cache recursive functions (numba issue #6061).
    """
    if n <= 128:
        return _pairwise_block(a, start, n, zero)
    right_start = np.empty(64, np.int64)  # depth <= log2(n): 64 always suffices
    right_n = np.empty(64, np.int64)
    left_sum = np.full(64, zero)
    left_done = np.zeros(64, np.bool_)
    depth = 0
    s, m = start, n
    while True:
        while m > 128:
            half = m // 2 - (m // 2) % 8
            right_start[depth] = s + half
            right_n[depth] = m - half
            left_done[depth] = False
            depth += 1
            m = half
        value = _pairwise_block(a, s, m, zero)
        while depth > 0 and left_done[depth - 1]:  # finished right halves: add to their left
            depth -= 1
            value = left_sum[depth] + value
        if depth == 0:
            return value
        left_sum[depth - 1] = value  # finished a left half: go on with its right half
        left_done[depth - 1] = True
        s, m = right_start[depth - 1], right_n[depth - 1]


@njit(cache=True, nogil=True)
def _pairwise_chunk(values, lanes, leaves):
    """:func:`_pairwise_sum` of ``_CHUNK`` float32 values in float64, faster: the
    tree is perfect (64 blocks of 128), so it is added up level by level, and
    the 8 accumulators are one vector (``lanes``)."""
    for leaf in range(64):
        block = values[leaf * 128 : (leaf + 1) * 128]
        for k in range(8):
            lanes[k] = block[k]
        for i in range(8, 128, 8):
            for k in range(8):
                lanes[k] += block[i + k]
        leaves[leaf] = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
            (lanes[4] + lanes[5]) + (lanes[6] + lanes[7])
        )
    width = 64
    while width > 1:
        width //= 2
        for i in range(width):
            leaves[i] = leaves[2 * i] + leaves[2 * i + 1]
    return leaves[0]


@njit(cache=True, nogil=True)
def _key_value(key):
    """The float32 of an order key (the bit map is its own inverse)."""
    bits = np.empty(1, np.int32)
    bits[0] = key ^ ((key >> 31) & 0x7FFFFFFF)
    return bits.view(np.float32)[0]


@njit(cache=True, nogil=True)
def _keys(values, bits, start, stop, center, deviations, keys):
    """``keys[:stop - start]`` = order keys of ``values[start:stop]`` (or of their
    float32 deviations ``abs(v - center)``), ``_END`` or above for non-finite values."""
    source = values[start:stop]
    if deviations:
        deviations_out = keys.view(np.float32)  # deviations are >= +0: their bits are keys
        for i in range(source.size):
            v = source[i]
            deviations_out[i] = abs(v - center) if abs(v) < np.inf else np.float32(np.nan)
    else:
        source_bits = bits[start:stop]
        for i in range(source.size):
            b = source_bits[i]
            finite = (b & _EXPONENT) != _EXPONENT
            keys[i] = b ^ ((b >> 31) & 0x7FFFFFFF) if finite else _EXCLUDED


@njit(cache=True, nogil=True)
def _plan(values, bits, center, deviations, sample_size):
    """From a sample of keys: the points at which a pass counts the keys below
    (``_SPREADS`` standard errors of the sample median's rank from it, and the
    key after each point that repeats in the sample, to tell ties apart), and
    the window the pass copies out: ``(points, lowest, width, capacity)``."""
    n = values.size
    step = max(1, n // sample_size)
    size = (n + step - 1) // step
    sample = np.empty(size, np.float32)
    state = 0x2545F4914F6CDD1D
    for k in range(size):
        # a random position in each stride, so periodic patterns (Bayer) cannot bias the sample
        state = state * 6364136223846793005 + 1442695040888963407
        sample[k] = values[min(n - 1, k * step + ((state >> 33) & 0x7FFFFFFF) % step)]
    keys = np.empty(size, np.int32)
    _keys(sample, sample.view(np.int32), 0, size, center, deviations, keys)
    keys = np.sort(keys)
    taken = np.searchsorted(keys, _END)  # the finite ones
    points = np.empty(2 * len(_SPREADS), np.int32)
    used = 0
    lowest = end = 0
    if taken:
        error = max(1, int(np.sqrt(taken)) // 2)  # standard error of the sample median's rank
        for index, spread in enumerate(_SPREADS):
            at = min(taken - 1, max(0, taken // 2 + spread * error))
            key = keys[at]
            points[used] = key
            used += 1
            repeated = (at > 0 and keys[at - 1] == key) or (at + 1 < taken and keys[at + 1] == key)
            if repeated:
                points[used] = key + 1
                used += 1
            if index == _COPY_FROM:  # the window starts after the point's ties
                lowest = key + 1 if repeated else key
            if index == _COPY_TO:
                end = key
    end = max(lowest, end)
    inside = np.searchsorted(keys, end) - np.searchsorted(keys, lowest)
    capacity = inside * n // size * 3 // 2 + _CHUNK
    return np.unique(points[:used]), np.int64(lowest), np.int64(end) - lowest, capacity


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _count_keys(chunk, points, below):
    """Adds to ``below`` the number of keys below each point; returns the number of
    finite keys. The counts add up as float32 (exact below 2**24) so that they
    may be reassociated, i.e. vectorised: only here, not in any sum of values."""
    one, zero = np.float32(1.0), np.float32(0.0)
    for j in range(points.size):
        point = points[j]
        less = zero
        for i in range(chunk.size):
            less += one if chunk[i] < point else zero
        below[j] += np.int64(less)
    finite = zero
    for i in range(chunk.size):
        finite += one if chunk[i] < _END else zero
    return np.int64(finite)


@njit(cache=True, nogil=True)
def _scan(values, bits, center, deviations, points, lowest, width, capacity, summary):
    """One pass over the keys. Returns ``(count, below, copied, found, low, high, total)``:
    the number of finite values; per point the number of keys below it; the keys
    in ``lowest .. lowest + width - 1`` in no order (``found`` of them, of which
    ``copied`` holds up to ``capacity``); with ``summary``, the min and max keys
    and the float64 sum of the finite values in numpy's order.
    """
    n = values.size
    first_key, end_key = np.int32(lowest), np.int32(lowest + width)
    keys = np.empty(_CHUNK, np.int32)
    inside = np.zeros(_CHUNK, np.uint8)  # flags: key in the window
    words = inside.view(np.uint64)
    below = np.zeros(points.size, np.int64)
    copied = np.empty(capacity, np.int32)
    found = 0
    count = 0
    low, high = _EXCLUDED, _LOWEST
    buffer = np.empty(_CHUNK, np.float64)  # finite values not summed yet (numpy's cast buffer)
    filled = 0
    total = 0.0
    lanes = np.empty(8, np.float64)
    leaves = np.empty(64, np.float64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        _keys(values, bits, start, stop, center, deviations, keys)
        chunk = keys[: stop - start]
        finite = _count_keys(chunk, points, below)
        count += finite

        if summary:
            for i in range(chunk.size):
                k = chunk[i]
                low = min(low, k)
                high = max(high, k if k < _END else _LOWEST)
            block = values[start:stop]
            if finite == _CHUNK and filled == 0:  # the usual case: sum straight from the image
                total += _pairwise_chunk(block, lanes, leaves)
            elif finite == block.size:  # all finite, after values already buffered
                done = 0
                while done < block.size:
                    take = min(block.size - done, _CHUNK - filled)
                    source, target = block[done : done + take], buffer[filled : filled + take]
                    for i in range(take):
                        target[i] = source[i]
                    done += take
                    filled += take
                    if filled == _CHUNK:
                        total += _pairwise_chunk(buffer, lanes, leaves)
                        filled = 0
            else:
                for i in range(block.size):
                    if chunk[i] < _END:
                        buffer[filled] = block[i]
                        filled += 1
                        if filled == _CHUNK:
                            total += _pairwise_chunk(buffer, lanes, leaves)
                            filled = 0

        if width == 0:
            continue
        for i in range(chunk.size):  # vectorised; most groups of 16 then hold no flag
            k = chunk[i]
            inside[i] = (k >= first_key) & (k < end_key)
        inside[chunk.size :] = 0
        for group in range(0, chunk.size, 16):
            if words[group // 8] | words[group // 8 + 1]:
                if found + 16 > capacity:  # nearly full: copy what fits, count the rest
                    for i in range(group, group + 16):
                        if inside[i]:
                            if found < capacity:
                                copied[found] = keys[i]
                            found += 1
                    continue
                for i in range(group, group + 16):  # no branch on the flags
                    copied[found] = keys[i]
                    found += inside[i]
    if filled:
        total += _pairwise_sum(buffer, 0, filled, 0.0)
    return count, below, copied, found, low, high, total


@njit(cache=True, nogil=True)
def _key_at(values, bits, center, deviations, points, below, count, rank):
    """The key of ``rank``, from the counts at ``points``: the window between the
    two points around it holds it; unless that window is one key wide (ties), a
    pass copies the window's keys out for ``np.partition``."""
    lowest, first = np.int64(_LOWEST), 0
    end, last = np.int64(_END), count
    for j in range(points.size - 1, -1, -1):
        if below[j] > rank:
            end, last = np.int64(points[j]), below[j]
        else:
            lowest, first = np.int64(points[j]), below[j]
            break
    if end - lowest == 1:
        return lowest
    copied = _scan(
        values, bits, center, deviations, points[:0], lowest, end - lowest, last - first, False
    )[2]
    return np.int64(np.partition(copied, rank - first)[rank - first])


@njit(cache=True, nogil=True)
def _median_kernel(values, center, deviations, summary, sample_size):
    """``(count, min, max, sum, median)`` of the finite values, or only the count
    and the median of their deviations from ``center``."""
    bits = values.view(np.int32)
    points, lowest, width, capacity = _plan(values, bits, center, deviations, sample_size)
    count, below, copied, found, low, high, total = _scan(
        values, bits, center, deviations, points, lowest, width, capacity, summary
    )
    if count == 0:
        return 0, np.float32(np.nan), np.float32(np.nan), 0.0, np.float32(np.nan)
    lower_rank, upper_rank = (count - 1) // 2, count // 2
    first = 0  # rank of the first copied key
    for j in range(points.size):
        if points[j] == lowest:
            first = below[j]
    if width and first <= lower_rank and upper_rank < first + found and found <= capacity:
        part = np.partition(copied[:found], lower_rank - first)  # the usual case
        lower = np.int64(part[lower_rank - first])
        upper = lower
        if upper_rank != lower_rank:
            upper = np.int64(part[lower_rank - first + 1 :].min())
    else:  # a misleading sample, or ties
        lower = _key_at(values, bits, center, deviations, points, below, count, lower_rank)
        upper = lower
        if upper_rank != lower_rank:
            upper = _key_at(values, bits, center, deviations, points, below, count, upper_rank)
    # numpy averages the middle element(s) as a float32 sum started at 0
    if count % 2:
        median = np.float32(0.0) + _key_value(lower)
    else:
        median = ((np.float32(0.0) + _key_value(lower)) + _key_value(upper)) / np.float32(2.0)
    return count, _key_value(low), _key_value(high), total, median


@njit(cache=True, nogil=True)
def _count_above_kernel(values, threshold):
    limit = np.float32(threshold)
    inf = np.float32(np.inf)
    count = 0
    for i in range(values.size):
        v = values[i]
        count += (v > limit) & (v < inf)
    return count


@njit(cache=True, nogil=True)
def _block_sums(row, blocks, factor, lanes, pairs, quads, sums):
    """``sums[j]`` = numpy's float32 pairwise sum of ``row[j * factor:(j + 1) * factor]``
    for the first ``blocks`` blocks. Up to 128 values, all blocks at once so
    that the loops vectorise: their 8 accumulators side by side in ``lanes``,
    then the tree over the accumulators one level at a time."""
    zero = np.float32(0.0)
    if factor < 8:
        sums[:blocks] = zero
        for i in range(factor):
            for j in range(blocks):
                sums[j] += row[j * factor + i]
        return
    if factor > 128:
        for j in range(blocks):
            sums[j] = _pairwise_sum(row, j * factor, factor, zero)
        return
    end = factor - factor % 8
    if factor == 8:
        lanes = row  # the accumulators are the values
    else:
        for j in range(blocks):
            base = j * factor
            for k in range(8):
                lanes[j * 8 + k] = row[base + k]
            for s in range(8, end, 8):
                for k in range(8):
                    lanes[j * 8 + k] += row[base + s + k]
    for i in range(4 * blocks):
        pairs[i] = lanes[2 * i] + lanes[2 * i + 1]
    for i in range(2 * blocks):
        quads[i] = pairs[2 * i] + pairs[2 * i + 1]
    for j in range(blocks):
        sums[j] = quads[2 * j] + quads[2 * j + 1]
    for i in range(end, factor):
        for j in range(blocks):
            sums[j] += row[j * factor + i]


@njit(cache=True, nogil=True)
def _block_mean_kernel(image, factor, out):
    """np.nanmean of each block, as the old row-band implementation computed it:
    per image row, each block's NaN-zeroed values summed pairwise (float32),
    those row sums added in row order, the total divided by the count in float64.
    A single column of blocks is one pairwise sum over the padded block (numpy
    merges the two summed axes then)."""
    height, width = image.shape
    out_w = out.shape[1]
    zero = np.float32(0.0)
    whole = out_w == 1
    # the NaN-zeroed, zero-padded row (or, for one column of blocks, the whole block)
    row = np.zeros(factor * factor if whole else out_w * factor, np.float32)
    lanes = np.empty(8 * out_w, np.float32)
    pairs = np.empty(4 * out_w, np.float32)
    quads = np.empty(2 * out_w, np.float32)
    sums = np.empty(out_w, np.float32)
    totals = np.empty(out_w, np.float32)
    counts = np.empty(out_w, np.int64)
    for block_row in range(out.shape[0]):
        totals[:] = zero
        counts[:] = 0
        if whole:
            row[:] = zero
        for r in range(block_row * factor, min(height, (block_row + 1) * factor)):
            source = image[r]
            target = row[(r - block_row * factor) * factor :] if whole else row
            nans = 0
            for c in range(width):
                v = source[c]
                is_nan = v != v
                target[c] = zero if is_nan else v
                nans += is_nan
            for j in range(out_w):
                start, stop = j * factor, min(width, (j + 1) * factor)
                if nans:
                    block = source[start:stop]
                    for c in range(block.size):
                        counts[j] += block[c] == block[c]
                else:
                    counts[j] += stop - start
            if not whole:
                _block_sums(row, out_w, factor, lanes, pairs, quads, sums)
                for j in range(out_w):
                    totals[j] += sums[j]
        if whole:
            totals[0] = _pairwise_sum(row, 0, row.size, zero)
        for j in range(out_w):
            # like np.nanmean: the float32 total over the integer count, in float64
            out[block_row, j] = np.float64(totals[j]) / counts[j] if counts[j] else np.nan


def _flat(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image, dtype=np.float32).reshape(-1)


def summarize(image: np.ndarray, sample: int = _SAMPLE) -> tuple[int, float, float, float, float]:
    """``(count, min, max, sum, median)`` of the finite values (float32 values but
    the float64 sum), in one pass when the sample does not mislead. Without any
    finite value: ``(0, nan, nan, 0.0, nan)``.

    ``sample`` values place the counting points: only the speed depends on it
    (tests take tiny samples to exercise the rarer paths).
    """
    count, low, high, total, median = _median_kernel(
        _flat(image), np.float32(0.0), False, True, max(1, int(sample))
    )
    return int(count), float(low), float(high), float(total), float(median)


def median_abs_deviation(image: np.ndarray, center: float, sample: int = _SAMPLE) -> float:
    """Median of ``abs(v - float32(center))`` in float32 over the finite values
    ``v`` (NaN without any); ``sample`` as for :func:`summarize`."""
    values = _flat(image)
    return float(_median_kernel(values, np.float32(center), True, False, max(1, int(sample)))[4])


def count_above(image: np.ndarray, threshold: float) -> int:
    """Number of finite values above ``threshold`` rounded to float32."""
    return int(_count_above_kernel(_flat(image), float(threshold)))


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """float32 mean of the non-NaN values of each ``factor`` x ``factor`` block of a
    2-D image; edge blocks average the pixels they have, all-NaN blocks give NaN."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim != 2 or 0 in image.shape or factor < 1:
        raise ValueError(
            f"expected a non-empty 2-D image and a factor >= 1, got shape {image.shape}, {factor}"
        )
    height, width = image.shape
    out = np.empty((-(-height // factor), -(-width // factor)), np.float32)
    _block_mean_kernel(image, int(factor), out)
    return out


def warm_up() -> None:
    """Compile or load (numba's disk cache) every kernel on a tiny image, so the
    first master is not slower than the others."""
    tiny = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, 4.0]], np.float32)
    median = summarize(tiny)[4]
    median_abs_deviation(tiny, median)
    count_above(tiny, median)
    block_mean(tiny, 2)
    block_mean(tiny[:, :1], 2)
