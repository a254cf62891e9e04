import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calib_stack.master import master_stats, write_master_fits


def numpy_stats(image: np.ndarray, frame_type: str) -> dict:
    """The specification: master_stats as plain numpy computed it before the kernels."""
    values = np.asarray(image, dtype=np.float32)
    values = values[np.isfinite(values)]
    stats: dict = {"median": None, "robust_std": None, "mean": None, "min": None, "max": None}
    if values.size:
        median = float(np.median(values))
        robust_std = 1.4826 * float(np.median(np.abs(values - np.float32(median))))
        stats = {
            "median": median,
            "robust_std": robust_std,
            "mean": float(np.mean(values, dtype=np.float64)),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    if frame_type.lower() == "dark":
        stats["hot_pixels"] = (
            int(np.count_nonzero(values > stats["median"] + 5.0 * stats["robust_std"]))
            if values.size
            else 0
        )
    return stats


@st.composite
def masters(draw) -> np.ndarray:
    """Small masters: noise or integer ties, hot pixels, dead columns of NaN, +-inf."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (draw(st.integers(1, 90)), draw(st.integers(1, 120)))
    level = draw(st.sampled_from([1.0, 50.0, 1000.0]))
    image = rng.normal(level, draw(st.sampled_from([0.0, 0.02, 3.0])), shape)
    if draw(st.booleans()):
        image = np.round(image)
    hot = rng.random(shape) < draw(st.sampled_from([0.0, 0.001, 0.02]))
    image[hot] = rng.uniform(100, 65535, hot.sum())
    if draw(st.booleans()):
        image[:, rng.integers(0, shape[1])] = np.nan
    bad = rng.random(shape) < draw(st.sampled_from([0.0, 0.01, 1.0]))
    image[bad] = rng.choice([np.nan, np.inf, -np.inf])
    return image.astype(np.float32)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=masters(), frame_type=st.sampled_from(["dark", "DARK", "bias", "flat"]))
def test_stats_are_numpys_bit_for_bit(image, frame_type):
    stats = master_stats(image, frame_type)
    assert stats == numpy_stats(image, frame_type)
    assert json.dumps(stats) == json.dumps(numpy_stats(image, frame_type))


def test_stats_equal_the_reference_formulas_over_finite_pixels():
    image = np.random.default_rng(3).normal(1000, 7, (64, 48)).astype(np.float32)
    image[0, :3] = [np.nan, np.inf, -np.inf]
    stats = master_stats(image, "bias")
    finite = image[np.isfinite(image)].astype(np.float64)
    median = np.median(finite)
    assert stats["median"] == pytest.approx(median, rel=1e-7)
    assert stats["robust_std"] == pytest.approx(
        1.4826 * np.median(np.abs(finite - median)), rel=1e-6
    )
    assert stats["mean"] == pytest.approx(finite.mean(), rel=1e-9)
    assert (stats["min"], stats["max"]) == (finite.min(), finite.max())
    assert "hot_pixels" not in stats
    json.dumps(stats)


def test_dark_stats_count_pixels_above_five_robust_sigma():
    image = np.random.default_rng(0).normal(50, 2, (200, 200)).astype(np.float32)
    image[10, 10:14] = [50 + 6, 50 + 11, 50 + 20, 50 + 60]  # 3, 5.5, 10 and 30 sigma
    stats = master_stats(image, "DARK")
    assert stats["robust_std"] == pytest.approx(2.0, rel=0.05)
    assert stats["hot_pixels"] == 3
    assert type(stats["hot_pixels"]) is int


def test_stats_of_flats_have_no_hot_pixels_and_are_plain_python():
    stats = master_stats(np.linspace(0.9, 1.1, 101, dtype=np.float32).reshape(1, 101), "flat")
    assert set(stats) == {"median", "robust_std", "mean", "min", "max"}
    assert all(type(value) is float for value in stats.values())
    assert stats["median"] == pytest.approx(1.0)


def test_stats_without_finite_pixels_are_null():
    stats = master_stats(np.full((3, 3), np.nan, np.float32), "dark")
    assert stats == {
        "median": None,
        "robust_std": None,
        "mean": None,
        "min": None,
        "max": None,
        "hot_pixels": 0,
    }


def test_master_fits_round_trip_with_long_cards_and_checksum(tmp_path):
    image = np.random.default_rng(1).normal(0, 1, (20, 30)).astype(np.float32)
    components = ",".join(f"frame-{i:04d}-0123456789abcdef" for i in range(12))
    cards = [
        ("IMAGETYP", "MASTER DARK", "frame type"),
        ("NCOMBINE", 12, "frames stacked"),
        ("EXPTIME", 30.0, "[s]"),
        ("CALIB_SIGMA_ITERATIONS", 5, "sigma clip passes"),
        ("CALIBSRC", components, "source frame ids"),
        ("OFFSET", None, "not reported"),
        ("HISTORY", "stacked by calib", ""),
        ("HISTORY", "second line", ""),
    ]
    path = tmp_path / "master.fits"
    write_master_fits(path, image.astype(np.float64), cards)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checksum mismatch would warn
        with fits.open(path, checksum=True) as hdul:
            header, data = hdul[0].header, hdul[0].data
            assert data.dtype == np.dtype(">f4")
            assert np.array_equal(data, image)
            assert header["IMAGETYP"] == "MASTER DARK"
            assert header["NCOMBINE"] == 12
            assert header["CALIB_SIGMA_ITERATIONS"] == 5
            assert header["CALIBSRC"] == components
            assert header["OFFSET"] is None or isinstance(header["OFFSET"], fits.card.Undefined)
            assert list(header["HISTORY"]) == ["stacked by calib", "second line"]
            assert "CHECKSUM" in header and "DATASUM" in header
    assert [p.name for p in tmp_path.iterdir()] == ["master.fits"]


def test_numpy_scalars_and_other_values_are_written(tmp_path):
    path = tmp_path / "m.fits"
    write_master_fits(
        path, np.zeros((2, 2)), [("GAIN", np.int64(120), ""), ("CREATED", tmp_path, "")]
    )
    header = fits.getheader(path)
    assert header["GAIN"] == 120
    assert header["CREATED"] == str(tmp_path)
