"""The image statistics kernels give numpy's results bit for bit."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calib_stack import imagestats

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Tiny samples make the first pass miss the median often, so the second-pass,
# tie and overflow paths are exercised; the default sample is the usual path.
SAMPLES = st.sampled_from([1, 2, 5, 64, 32768])  # 32768: the default


@st.composite
def images(draw) -> np.ndarray:
    """float32 images: 1 pixel to a few of the sum's 8192-value batches; noise,
    integer ties, huge dynamic range, constants, two values, signed zeros,
    neighbouring floats and near-overflow values; outliers, NaN and +-inf."""
    rows = draw(st.sampled_from([1, 1, 2, 3, 17, 64, 150]))
    cols = draw(st.sampled_from([1, 2, 5, 31, 64, 200]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (rows, cols)
    kind = draw(
        st.sampled_from(
            ["noise", "ties", "wide", "constant", "two values", "zeros", "neighbours", "huge"]
        )
    )
    if kind == "noise":
        image = rng.normal(draw(st.sampled_from([0.0, 1.0, 1000.0, -50.0])), 7.0, shape)
    elif kind == "ties":
        image = np.round(rng.normal(500.0, 3.0, shape)) / draw(st.sampled_from([1, 2]))
    elif kind == "wide":
        image = rng.standard_normal(shape) * 10.0 ** rng.uniform(-30, 30, shape)
    elif kind == "constant":
        image = np.full(shape, rng.normal())
    elif kind == "two values":
        image = rng.choice([5.0, 7.0], shape)
    elif kind == "zeros":
        image = rng.choice([-0.0, 0.0, 1.0], shape)
    elif kind == "neighbours":  # a few adjacent float32 values
        ulps = rng.integers(0, draw(st.sampled_from([2, 3, 5])), shape, dtype=np.int32)
        start = np.float32(draw(st.sampled_from([1.0, -3.0]))).view(np.int32)
        image = (start + ulps).view(np.float32)
    else:  # deviations and sums can overflow float32
        image = rng.choice([-3e38, 3e38], shape) * rng.random(shape)
    outliers = rng.random(shape) < draw(st.sampled_from([0.0, 0.001, 0.05]))
    image[outliers] = rng.choice([-1.0, 1.0], outliers.sum()) * 60000.0
    for bad in (np.nan, np.inf, -np.inf):
        image[rng.random(shape) < draw(st.sampled_from([0.0, 0.02, 0.5, 1.0]))] = bad
    return image.astype(np.float32)


def finite(image: np.ndarray) -> np.ndarray:
    return image[np.isfinite(image)]


def same_float32(value: float, expected) -> bool:
    """Equal bits as float32 (so signed zeros and NaN compare too)."""
    return np.float32(value).tobytes() == np.float32(expected).tobytes()


@PROPERTY
@given(image=images(), sample=SAMPLES)
def test_summary_and_median_equal_numpy(image, sample):
    count, low, high, total, median = imagestats.summarize(image, sample)
    values = finite(image)
    assert count == values.size
    if not values.size:
        assert math.isnan(low) and math.isnan(high) and math.isnan(median) and total == 0.0
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float32 overflow, as numpy has it
        expected_median = np.median(values)
        expected_total = np.sum(values, dtype=np.float64)
        expected_mean = np.mean(values, dtype=np.float64)
    # the same numbers; only a zero's sign may differ when both zeros are present
    # (numpy's own min/max then picks by position)
    assert (low, high) == (values.min(), values.max())
    assert same_float32(median, expected_median)  # exact, even counts included
    assert total == expected_total
    assert total / count == expected_mean


@PROPERTY
@given(image=images(), sample=SAMPLES, off_center=st.booleans())
def test_median_absolute_deviation_equals_numpy(image, sample, off_center):
    values = finite(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = float(np.median(values)) if values.size else 0.0
        if off_center:
            center = center * 1.5 + 3.25
        expected = np.median(np.abs(values - np.float32(center))) if values.size else np.nan
        result = imagestats.median_abs_deviation(image, center, sample)
    assert same_float32(result, expected)


@PROPERTY
@given(
    image=images(),
    threshold=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(-1e4, 1e4),
        st.sampled_from([0.0, -0.0, 5.0, 500.0, 3.4028235e38, 3.4028236e38, 1e300]),
    ),
)
def test_count_above_equals_numpy(image, threshold):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a threshold beyond float32
        expected = int(np.count_nonzero(finite(image) > threshold))
    assert imagestats.count_above(image, threshold) == expected


def nanmean_blocks(image: np.ndarray, factor: int) -> np.ndarray:
    """The specification: preview.py's block mean before the kernel, one NaN-padded
    band of block rows at a time through np.nanmean."""
    height, width = image.shape
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


@PROPERTY
@given(
    image=images(),
    factor=st.one_of(st.integers(1, 20), st.sampled_from([64, 128, 129, 150, 300])),
)
def test_block_mean_equals_the_nanmean_implementation(image, factor):
    expected = nanmean_blocks(image, factor)
    result = imagestats.block_mean(image, factor)
    assert result.dtype == np.float32
    assert np.array_equal(result, expected, equal_nan=True)


def test_frame_sized_statistics_equal_numpy():
    """Several sample-sized batches: the usual one-pass path on realistic masters."""
    rng = np.random.default_rng(4)
    dark = rng.normal(50.0, 2.0, (300, 400)).astype(np.float32)
    dark[rng.random(dark.shape) < 0.002] = 65000.0
    dark[7, :] = np.nan
    bias = np.round(rng.normal(500.0, 3.0, (300, 400))).astype(np.float32)
    bayer_flat = rng.normal(1.0, 0.01, (300, 400)).astype(np.float32)
    bayer_flat[::2, ::2] *= 0.5  # one colour of a Bayer mosaic much darker
    for image in (dark, bias, bayer_flat, dark[:, :-1]):  # even and odd counts
        values = finite(image)
        count, low, high, total, median = imagestats.summarize(image)
        assert (count, low, high) == (values.size, values.min(), values.max())
        assert total == np.sum(values, dtype=np.float64)
        assert same_float32(median, np.median(values))
        expected_mad = np.median(np.abs(values - np.float32(median)))
        assert same_float32(imagestats.median_abs_deviation(image, median), expected_mad)
        assert np.array_equal(
            imagestats.block_mean(image, 7), nanmean_blocks(image, 7), equal_nan=True
        )


def test_degenerate_images():
    assert imagestats.summarize(np.full((2, 2), 4.5, np.float32)) == (4, 4.5, 4.5, 18.0, 4.5)
    assert imagestats.summarize(np.array([[-2.0]], np.float32)) == (1, -2.0, -2.0, -2.0, -2.0)
    count, low, high, total, median = imagestats.summarize(np.full((3, 3), np.nan, np.float32))
    assert count == 0 and total == 0.0 and all(map(math.isnan, (low, high, median)))
    assert math.isnan(imagestats.median_abs_deviation(np.full(4, np.inf, np.float32), 0.0))
    assert imagestats.count_above(np.array([np.inf, np.nan, 2.0], np.float32), 1.0) == 1
    assert np.isnan(imagestats.block_mean(np.full((3, 3), np.nan, np.float32), 2)).all()
    with pytest.raises(ValueError, match="2-D"):
        imagestats.block_mean(np.zeros((0, 4), np.float32), 2)
    with pytest.raises(ValueError, match="factor"):
        imagestats.block_mean(np.zeros((4, 4), np.float32), 0)


def test_a_window_of_two_neighbouring_keys_is_searched_not_taken_for_ties():
    """Counts at keys p and p + 2 leave the window p..p+1: only a one-key window is
    all ties. (Random samples rarely produce this, so the step is called directly.)"""
    first = np.float32(1.0).view(np.int32)
    values = (first + np.array([0, 1, 1, 1, 2], np.int32)).view(np.float32)
    points = np.array([first, first + 2], np.int32)
    below = np.array([0, 4], np.int64)
    bits = values.view(np.int32)
    key = imagestats._key_at(values, bits, np.float32(0), False, points, below, 5, 2)
    assert key == first + 1


KERNELS = [
    imagestats._median_kernel,
    imagestats._count_above_kernel,
    imagestats._block_mean_kernel,
]


def test_warm_up_leaves_nothing_to_compile_for_a_master():
    """After warm_up a master's statistics and preview reuse its compiled kernels."""
    imagestats.warm_up()
    compiled = [len(kernel.signatures) for kernel in KERNELS]
    master = np.random.default_rng(0).normal(100.0, 5.0, (40, 30)).astype(np.float32)
    median = imagestats.summarize(master)[4]
    imagestats.count_above(master, median + 5 * imagestats.median_abs_deviation(master, median))
    imagestats.block_mean(master, 3)
    assert [len(kernel.signatures) for kernel in KERNELS] == compiled
