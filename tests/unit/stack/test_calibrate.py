"""SPEC §7 numerics: CMOS and CCD formulas, band by band, into a float32 FITS file."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from astropy.io import fits

from calib_stack.calibrate import CalibrationInputError, calibrate_light
from calib_stack.fitsio import InvalidFitsError, read_image

SHAPE = (37, 23)


@pytest.fixture
def images():
    rng = np.random.default_rng(5)
    return {
        "light": np.round(rng.normal(1500, 40, SHAPE)),
        "bias": rng.normal(500, 3, SHAPE).astype(np.float32),
        "dark": rng.normal(20, 2, SHAPE).astype(np.float32),
        "rate": rng.uniform(0.01, 0.5, SHAPE).astype(np.float32),
        "flat": rng.uniform(0.7, 1.1, SHAPE).astype(np.float32),
    }


@pytest.fixture
def files(images, frame_writer):
    light_cards = {"IMAGETYP": "LIGHT", "OBJECT": "M 31", "FILTER": "L", "EXPTIME": 30.0}
    paths = {"light": frame_writer("light.fits", images["light"], "uint16", light_cards)}
    for name in ("bias", "dark", "rate", "flat"):
        paths[name] = frame_writer(f"{name}.fits", images[name], "float32")
    return paths


def test_cmos_is_light_minus_dark_over_flat(images, files, tmp_path):
    out = tmp_path / "cal.fits"
    shape = calibrate_light(files["light"], out, dark=files["dark"], flat=files["flat"])
    assert shape == SHAPE
    expected = (images["light"].astype(np.float32) - images["dark"]) / images["flat"]
    np.testing.assert_allclose(read_image(out), expected, rtol=1e-6)


def test_ccd_subtracts_bias_and_the_dark_rate_times_the_exposure(images, files, tmp_path):
    out = tmp_path / "cal.fits"
    calibrate_light(
        files["light"],
        out,
        bias=files["bias"],
        dark=files["rate"],
        flat=files["flat"],
        dark_scale=30.0,
    )
    light = images["light"].astype(np.float32)
    expected = (light - images["bias"] - images["rate"] * np.float32(30.0)) / images["flat"]
    np.testing.assert_allclose(read_image(out), expected, rtol=1e-5)


def test_without_a_flat_nothing_is_divided_and_a_flat_median_rescales(images, files, tmp_path):
    calibrate_light(files["light"], tmp_path / "a.fits", dark=files["dark"])
    np.testing.assert_allclose(
        read_image(tmp_path / "a.fits"),
        images["light"].astype(np.float32) - images["dark"],
        rtol=1e-6,
    )
    calibrate_light(
        files["light"], tmp_path / "b.fits", dark=files["dark"], flat=files["flat"], flat_scale=2.0
    )
    expected = (images["light"].astype(np.float32) - images["dark"]) / (images["flat"] / 2)
    np.testing.assert_allclose(read_image(tmp_path / "b.fits"), expected, rtol=1e-6)


def test_flat_pixels_that_are_not_positive_give_nan(images, frame_writer, files, tmp_path):
    flat = images["flat"].copy()
    flat[0, 0], flat[1, 1], flat[2, 2] = 0.0, -0.5, np.nan
    bad = frame_writer("bad-flat.fits", flat, "float32")
    calibrate_light(files["light"], tmp_path / "cal.fits", dark=files["dark"], flat=bad)
    result = read_image(tmp_path / "cal.fits")
    assert np.isnan([result[0, 0], result[1, 1], result[2, 2]]).all()
    assert np.isfinite(result).sum() == result.size - 3


def test_the_result_does_not_depend_on_the_band_height(files, tmp_path):
    calibrate_light(files["light"], tmp_path / "whole.fits", dark=files["dark"], flat=files["flat"])
    calibrate_light(
        files["light"],
        tmp_path / "rows.fits",
        dark=files["dark"],
        flat=files["flat"],
        memory_limit_mb=0.0001,
    )  # one row per band
    assert (tmp_path / "whole.fits").read_bytes() == (tmp_path / "rows.fits").read_bytes()


def test_the_output_is_float32_with_the_lights_header_and_the_calibration_cards(files, tmp_path):
    out = tmp_path / "cal.fits"
    calibrate_light(
        files["light"],
        out,
        dark=files["dark"],
        cards=[
            ("CALDARK", "m123", "master dark used"),
            ("CALWRN01", "x" * 120, "warning"),
            ("HISTORY", "calib: calibrated = light - dark", ""),
        ],
    )
    with fits.open(out) as hdul:
        header = hdul[0].header
        assert len(hdul) == 1 and hdul[0].data.dtype.kind == "f"
    assert header["BITPIX"] == -32 and "BZERO" not in header
    assert (header["OBJECT"], header["FILTER"], header["IMAGETYP"]) == ("M 31", "L", "LIGHT")
    assert header["CALDARK"] == "m123"
    assert header["CALWRN01"] == "x" * 120
    assert "calib: calibrated = light - dark" in str(header["HISTORY"])


def test_a_master_of_another_size_is_refused_and_nothing_is_written(
    images, frame_writer, files, tmp_path
):
    small = frame_writer("small.fits", images["dark"][:10], "float32")
    out = tmp_path / "cal.fits"
    with pytest.raises(CalibrationInputError, match=r"master dark is 23x10, the light is 23x37"):
        calibrate_light(files["light"], out, dark=small)
    assert list(tmp_path.glob("*cal.fits*")) == []


def test_an_unreadable_input_is_an_invalid_fits_error(files, tmp_path):
    broken = tmp_path / "broken.fits"
    broken.write_bytes(files["dark"].read_bytes()[:3000])
    with pytest.raises(InvalidFitsError, match="truncated"):
        calibrate_light(files["light"], tmp_path / "cal.fits", dark=broken)


def test_memory_stays_bounded_by_the_band_not_the_image(frame_writer, tmp_path):
    shape = (1500, 2000)  # 12 MB per float32 image
    rng = np.random.default_rng(1)
    light = frame_writer("big-light.fits", rng.integers(1000, 2000, shape), "uint16")
    dark = frame_writer("big-dark.fits", np.full(shape, 10.0), "float32")
    flat = frame_writer("big-flat.fits", np.full(shape, 0.5), "float32")
    out = tmp_path / "big-cal.fits"
    tracemalloc.start()
    try:
        calibrate_light(light, out, dark=dark, flat=flat, memory_limit_mb=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    with fits.open(out, memmap=True) as hdul:
        assert hdul[0].data.shape == shape
        assert float(hdul[0].data[-1, -1]) == (float(read_image(light)[-1, -1]) - 10.0) / 0.5
