import warnings

import numba
import numpy as np
import pytest
from astropy.stats import sigma_clip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from calib_stack.kernels import combine

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def astropy_reference(cube: np.ndarray, sigma: float, maxiters: int) -> tuple[np.ndarray, int]:
    """The specification: astropy's sigma-clipped mean (as float32, our output type)
    and how many finite values it clipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = sigma_clip(
            cube, sigma=sigma, maxiters=maxiters, axis=0, cenfunc="median", stdfunc="std"
        )
        mean = clipped.mean(axis=0)
    rejected = int(np.count_nonzero(clipped.mask & np.isfinite(cube)))
    return np.ma.filled(mean, np.nan).astype(np.float32), rejected


def finite_only(cube: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(cube), cube, np.nan)


@st.composite
def frame_stacks(draw) -> np.ndarray:
    """Noise stacks with outliers, ties (quantised values), NaNs and infs."""
    n = draw(st.integers(1, 60))
    # At least two pixels: numpy sums a single-pixel cube pairwise instead of in frame order.
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    level = draw(st.sampled_from([0.0, 1.0, 1000.0, 30000.0, -50.0]))
    noise = draw(st.sampled_from([0.0, 0.01, 1.0, 25.0]))
    cube = rng.normal(level, noise, (n, rows, cols))
    if draw(st.booleans()):  # ties, like integer ADUs
        cube = np.round(cube / max(noise, 1.0) * 2) * max(noise, 1.0) / 2
    outliers = rng.random(cube.shape) < draw(st.sampled_from([0.0, 0.05, 0.3]))
    cube[outliers] += rng.choice([-1, 1], outliers.sum()) * rng.uniform(5, 5000, outliers.sum())
    for bad, fraction in zip(
        (np.nan, np.inf, -np.inf),
        draw(st.tuples(*[st.sampled_from([0.0, 0.05, 0.5])] * 3)),
        strict=True,
    ):
        cube[rng.random(cube.shape) < fraction] = bad
    return cube.astype(np.float32)


@PROPERTY
@given(cube=frame_stacks(), sigma=st.floats(0.5, 10.0), maxiters=st.integers(1, 20))
def test_sigma_clip_equals_astropy(cube, sigma, maxiters):
    expected, expected_rejected = astropy_reference(cube, sigma, maxiters)
    result = combine(cube, "sigma_clip", sigma, maxiters)
    assert result.image.dtype == np.float32
    np.testing.assert_allclose(result.image, expected, rtol=1e-6, atol=0, equal_nan=True)
    assert result.rejected == expected_rejected


@PROPERTY
@given(
    cube=arrays(
        np.float32,
        st.tuples(st.integers(1, 8), st.integers(1, 2), st.integers(2, 3)),
        elements=st.one_of(
            st.integers(-3, 3).map(float),
            st.floats(-1e6, 1e6, width=32),
            st.sampled_from([np.nan, np.inf, -np.inf]),
        ),
    ),
    sigma=st.floats(0.5, 10.0),
    maxiters=st.integers(1, 20),
)
def test_sigma_clip_equals_astropy_on_adversarial_values(cube, sigma, maxiters):
    expected, expected_rejected = astropy_reference(cube, sigma, maxiters)
    result = combine(cube, "sigma_clip", sigma, maxiters)
    np.testing.assert_allclose(result.image, expected, rtol=1e-6, atol=0, equal_nan=True)
    assert result.rejected == expected_rejected


@PROPERTY
@given(cube=frame_stacks())
def test_mean_and_median_equal_numpy(cube):
    reference = finite_only(cube)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        expected_mean = np.nanmean(reference, axis=0)
        expected_median = np.nanmedian(reference, axis=0)
    mean = combine(cube, "mean")
    median = combine(cube, "median")
    np.testing.assert_allclose(mean.image, expected_mean, rtol=1e-6, atol=0, equal_nan=True)
    np.testing.assert_allclose(median.image, expected_median, rtol=1e-6, atol=0, equal_nan=True)
    assert mean.rejected == median.rejected == 0


def test_frame_sized_stack_matches_astropy_bit_for_bit():
    rng = np.random.default_rng(7)
    cube = np.round(rng.normal(1000, 12, (20, 96, 80))).astype(np.float32)
    hits = rng.random(cube.shape) < 0.002
    cube[hits] = 65535  # cosmic rays / saturated hits
    cube[:, 5, 5] = 1200  # constant pixel: std 0
    expected, expected_rejected = astropy_reference(cube, 3.0, 5)
    result = combine(cube, "sigma_clip", 3.0, 5)
    assert np.array_equal(result.image, expected)
    assert result.rejected == expected_rejected
    assert result.rejected >= np.count_nonzero(hits)  # every hit, plus iterated noise tails


def test_pixel_without_finite_values_is_nan_and_single_values_pass_through():
    cube = np.array([[[np.nan, 5.0]], [[np.inf, np.nan]], [[-np.inf, np.nan]]], dtype=np.float32)
    for method in ("mean", "median", "sigma_clip"):
        result = combine(cube, method)
        assert np.isnan(result.image[0, 0])
        assert result.image[0, 1] == 5.0
        assert result.rejected == 0


def test_known_outlier_is_rejected():
    cube = np.array([10, 11, 9, 10, 10, 11, 9, 10, 500], dtype=np.float32).reshape(9, 1, 1)
    result = combine(cube, "sigma_clip", sigma=2.0, maxiters=5)
    assert result.image[0, 0] == pytest.approx(10.0)
    assert result.rejected == 1
    assert combine(cube, "median").image[0, 0] == 10.0
    assert combine(cube, "mean").image[0, 0] == pytest.approx(580 / 9)


def test_result_does_not_depend_on_thread_count():
    rng = np.random.default_rng(3)
    cube = rng.normal(100, 5, (15, 64, 70)).astype(np.float32)
    cube[rng.random(cube.shape) < 0.01] = 1e4
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = combine(cube, "sigma_clip")
    finally:
        numba.set_num_threads(threads)
    parallel = combine(cube, "sigma_clip")
    assert np.array_equal(single.image, parallel.image)
    assert single.rejected == parallel.rejected


@pytest.mark.parametrize(
    ("method", "sigma", "maxiters", "message"),
    [
        ("average", 3.0, 5, "unknown stacking method"),
        ("sigma_clip", 0.0, 5, "sigma"),
        ("sigma_clip", 3.0, 0, "maxiters"),
    ],
)
def test_invalid_parameters_are_refused(method, sigma, maxiters, message):
    with pytest.raises(ValueError, match=message):
        combine(np.zeros((3, 2, 2), np.float32), method, sigma, maxiters)
