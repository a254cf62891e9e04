"""Tests for the synthetic camera (calib_stack.synthetic)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from astropy.io import fits

from calib_stack import synthetic as syn

CAM = syn.Camera()
T_SET = -10.0


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _dark_signal(frame: np.ndarray, camera: syn.Camera = CAM) -> np.ndarray:
    return frame.astype(np.float64) - syn.bias_pattern(camera)


# --------------------------------------------------------------------------- basics


def test_frames_have_camera_shape_dtype_and_are_reproducible():
    makers = {
        "bias": lambda rng: syn.bias_frame(CAM, rng=rng),
        "dark": lambda rng: syn.dark_frame(CAM, exposure_s=60, temperature_c=T_SET, rng=rng),
        "flat": lambda rng: syn.flat_frame(
            CAM, filter_name="L", exposure_s=1.5, temperature_c=T_SET, rng=rng
        ),
        "light": lambda rng: syn.light_frame(
            CAM, filter_name="R", exposure_s=30, temperature_c=T_SET, rng=rng
        )[0],
    }
    for name, make in makers.items():
        a, b, c = make(_rng(7)), make(_rng(7)), make(_rng(8))
        assert a.shape == (CAM.height, CAM.width), name
        assert a.dtype == np.uint16, name
        assert np.array_equal(a, b), f"{name}: same rng seed must give the same frame"
        assert not np.array_equal(a, c), f"{name}: different rng seed must give a new frame"


def test_clipped_to_uint16_range_without_wraparound():
    flat = syn.flat_frame(
        CAM, filter_name="L", exposure_s=1, temperature_c=0, rng=_rng(), level_adu=1e6
    )
    assert flat.min() == 65535
    dim = syn.Camera(bias_level_adu=0.0, read_noise_adu=20.0)
    bias = syn.bias_frame(dim, rng=_rng())
    assert bias.min() == 0
    assert bias.max() < 1000  # negative values clipped to 0, not wrapped to ~65535


def test_small_frames_are_fast():
    rng = _rng()
    syn.dark_frame(CAM, exposure_s=60, temperature_c=T_SET, rng=rng)  # warm the pattern cache
    syn.light_frame(CAM, filter_name="L", exposure_s=60, temperature_c=T_SET, rng=rng)
    t0 = time.perf_counter()
    for _ in range(10):
        syn.dark_frame(CAM, exposure_s=60, temperature_c=T_SET, rng=rng)
        syn.flat_frame(CAM, filter_name="L", exposure_s=2, temperature_c=T_SET, rng=rng)
        syn.light_frame(CAM, filter_name="L", exposure_s=60, temperature_c=T_SET, rng=rng)
    per_frame = (time.perf_counter() - t0) / 30
    assert per_frame < 0.05, f"{per_frame * 1e3:.1f} ms per 256x192 frame"


# --------------------------------------------------------------------------- bias


def test_bias_median_matches_level_and_noise_matches_read_noise():
    bias = syn.bias_frame(CAM, rng=_rng(1))
    assert abs(np.median(bias) - CAM.bias_level_adu) <= 1.0
    pattern = syn.bias_pattern(CAM)
    assert pattern.dtype == np.float32
    assert abs(np.median(pattern) - CAM.bias_level_adu) < 0.5
    noise = bias - pattern.astype(np.float64)
    assert abs(noise.mean()) < 0.1
    # read noise plus rounding (1/12 ADU^2)
    assert np.std(noise) == pytest.approx(np.hypot(CAM.read_noise_adu, 12**-0.5), rel=0.03)


def test_bias_column_pattern_is_fixed():
    col_a = syn.bias_frame(CAM, rng=_rng(1)).mean(axis=0)
    col_b = syn.bias_frame(CAM, rng=_rng(2)).mean(axis=0)
    truth = syn.bias_pattern(CAM).mean(axis=0)
    assert np.std(truth) > 0.5  # there is a visible column pattern
    assert np.corrcoef(col_a, col_b)[0, 1] > 0.9
    assert np.abs(col_a - truth).max() < 1.5  # 3.5 / sqrt(192) per column, ~5 sigma


# --------------------------------------------------------------------------- dark


def test_dark_mean_grows_linearly_with_exposure():
    kw = {"temperature_c": 0.0, "cosmic_rays": False}
    m60 = _dark_signal(syn.dark_frame(CAM, exposure_s=60, rng=_rng(1), **kw)).mean()
    m300 = _dark_signal(syn.dark_frame(CAM, exposure_s=300, rng=_rng(2), **kw)).mean()
    m0 = _dark_signal(syn.dark_frame(CAM, exposure_s=0, rng=_rng(3), **kw)).mean()
    assert abs(m0) < 0.1
    assert m300 / m60 == pytest.approx(5.0, rel=0.05)
    expected = syn.dark_rate(CAM, 0.0).mean() * 300
    assert m300 == pytest.approx(expected, rel=0.03)


def test_dark_current_doubles_every_six_degrees():
    kw = {"exposure_s": 300, "cosmic_rays": False}
    means = {
        t: _dark_signal(syn.dark_frame(CAM, temperature_c=t, rng=_rng(int(t) + 50), **kw)).mean()
        for t in (-6.0, 0.0, 6.0)
    }
    assert means[0.0] / means[-6.0] == pytest.approx(2.0, rel=0.05)
    assert means[6.0] / means[0.0] == pytest.approx(2.0, rel=0.05)
    rate = syn.dark_rate(CAM, 0.0)
    assert rate.dtype == np.float32
    np.testing.assert_allclose(syn.dark_rate(CAM, 6.0), 2 * rate, rtol=1e-5)
    np.testing.assert_allclose(np.median(rate), CAM.dark_current_adu_s_at_0c, rtol=0.1)


def test_hot_pixels_are_visible_and_fixed_across_frames():
    rows, cols = syn.hot_pixels(CAM)
    n_hot = len(rows)
    assert n_hot == round(CAM.hot_pixel_fraction * CAM.width * CAM.height)
    found = []
    for seed in (11, 12, 13):
        dark = _dark_signal(
            syn.dark_frame(CAM, exposure_s=300, temperature_c=0, rng=_rng(seed), cosmic_rays=False)
        )
        # ordinary pixels: ~6 +- 4 ADU; hot pixels: >= 150 ADU
        found.append(set(zip(*np.nonzero(dark > 60), strict=True)))
    expected = set(zip(rows.tolist(), cols.tolist(), strict=True))
    for hits in found:
        assert hits == expected
    # the true dark rate shows them too
    rate = syn.dark_rate(CAM, 0.0)
    assert rate[rows, cols].min() > 20 * np.median(rate)


def test_hot_pixels_depend_only_on_camera_and_seed():
    same = syn.Camera(gain=0, offset=10, read_noise_adu=1.0)  # same name, seed and size
    other_seed = syn.Camera(seed=1)
    other_name = syn.Camera(name="QHY268M")
    base = set(np.ravel_multi_index(syn.hot_pixels(CAM), CAM.shape).tolist())
    assert set(np.ravel_multi_index(syn.hot_pixels(same), CAM.shape).tolist()) == base
    for cam in (other_seed, other_name):
        hot = set(np.ravel_multi_index(syn.hot_pixels(cam), cam.shape).tolist())
        assert len(hot & base) < len(base) // 4


def _pattern_digest(camera: syn.Camera) -> str:
    h = hashlib.sha256()
    h.update(np.ravel_multi_index(syn.hot_pixels(camera), camera.shape).astype("<i8").tobytes())
    h.update(syn.dark_rate(camera, -10.0).astype("<f4").tobytes())
    h.update(syn.bias_pattern(camera).astype("<f4").tobytes())
    h.update(syn.flat_field(camera, "Ha").astype("<f4").tobytes())
    return h.hexdigest()


def test_fixed_pattern_is_stable_across_processes():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import test_synthetic as t; from calib_stack import synthetic as syn;"
        "print(t._pattern_digest(syn.Camera(seed=3)))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == _pattern_digest(syn.Camera(seed=3))


def test_darks_have_a_few_cosmic_rays():
    hot = set(np.ravel_multi_index(syn.hot_pixels(CAM), CAM.shape).tolist())
    rng = _rng(5)
    hits = 0
    for _ in range(5):
        dark = _dark_signal(syn.dark_frame(CAM, exposure_s=120, temperature_c=-10, rng=rng))
        bright = set(np.flatnonzero(dark > 150).tolist()) - hot
        assert len(bright) < 100
        hits += len(bright)
    assert hits > 0


# --------------------------------------------------------------------------- flat


def test_flat_field_is_normalised_and_shows_vignetting_and_dust():
    ff = syn.flat_field(CAM, "L")
    assert ff.dtype == np.float32
    assert ff.shape == CAM.shape
    assert np.median(ff) == pytest.approx(1.0, abs=1e-4)
    h, w = ff.shape
    centre = ff[h // 2 - 10 : h // 2 + 10, w // 2 - 10 : w // 2 + 10].mean()
    corners = np.mean([ff[:10, :10].mean(), ff[:10, -10:].mean(),
                       ff[-10:, :10].mean(), ff[-10:, -10:].mean()])  # fmt: skip
    assert corners / centre < 0.9  # vignetting

    # Dust donuts: local dips well below a smooth (polynomial) illumination model,
    # averaged over 3x3 blocks to suppress pixel response non-uniformity.
    y, x = np.mgrid[0:h, 0:w]
    x = (x - w / 2) / w
    y = (y - h / 2) / h
    design = np.stack([(x**i * y**j).ravel() for i in range(5) for j in range(5 - i)], 1)
    coef, *_ = np.linalg.lstsq(design, ff.ravel().astype(np.float64), rcond=None)
    resid = ff - (design @ coef).reshape(h, w)
    blocks = resid[: h // 3 * 3, : w // 3 * 3].reshape(h // 3, 3, w // 3, 3).mean(axis=(1, 3))
    assert blocks.min() < -0.03

    # The pattern depends on the filter, and is stable.
    assert np.abs(ff / syn.flat_field(CAM, "Ha") - 1).max() > 0.01
    np.testing.assert_array_equal(ff, syn.flat_field(CAM, "L"))


def test_flat_median_normalised_matches_flat_field():
    t, temp = 2.0, T_SET
    raw = syn.flat_frame(CAM, filter_name="OIII", exposure_s=t, temperature_c=temp, rng=_rng(3))
    signal = raw - syn.bias_pattern(CAM).astype(np.float64) - syn.dark_rate(CAM, temp) * t
    assert np.median(signal) == pytest.approx(25000, rel=0.01)
    measured = signal / np.median(signal)
    ff = syn.flat_field(CAM, "OIII")
    resid = measured - ff
    # shot noise at 25000 ADU is 0.63 %
    assert abs(resid.mean()) < 1e-3
    assert np.std(resid) == pytest.approx(np.sqrt(25000 * ff.mean()) / 25000, rel=0.1)
    # even the raw frame, median-normalised, follows the pattern closely
    raw_norm = raw / np.median(raw)
    assert np.corrcoef(raw_norm.ravel(), ff.ravel())[0, 1] > 0.95


# --------------------------------------------------------------------------- light


def test_light_truth_is_consistent_with_calibration():
    t, temp, filt = 120.0, T_SET, "L"
    raw, truth = syn.light_frame(
        CAM, filter_name=filt, exposure_s=t, temperature_c=temp, rng=_rng(4), sky_adu_s=2.0
    )
    assert truth.dtype == np.float32 and truth.shape == CAM.shape
    bias = syn.bias_pattern(CAM).astype(np.float64)
    dark = syn.dark_rate(CAM, temp).astype(np.float64) * t
    ff = syn.flat_field(CAM, filt).astype(np.float64)

    # the sky is about sky_adu_s * t, and there are stars well above it
    sky = np.median(truth)
    assert sky == pytest.approx(2.0 * t, rel=0.05)
    assert truth.max() > sky + 200

    calibrated = (raw - bias - dark) / ff
    ok = raw < 65535
    assert ok.mean() > 0.99
    variance = (CAM.read_noise_adu**2 + 1 / 12 + dark + ff * truth) / ff**2
    chi = ((calibrated - truth) / np.sqrt(variance))[ok]
    assert abs(chi.mean()) < 0.03
    assert np.std(chi) == pytest.approx(1.0, rel=0.05)
    # star flux is recovered
    stars = (truth - sky > 50) & ok
    assert stars.sum() > 50
    recovered = (calibrated - sky)[stars].sum() / (truth - sky)[stars].sum()
    assert recovered == pytest.approx(1.0, rel=0.02)


def test_light_narrowband_is_dimmer():
    _, lum = syn.light_frame(CAM, filter_name="L", exposure_s=60, temperature_c=0, rng=_rng(1))
    _, ha = syn.light_frame(CAM, filter_name="Ha", exposure_s=60, temperature_c=0, rng=_rng(1))
    assert np.median(ha) < 0.1 * np.median(lum)


# --------------------------------------------------------------------------- FITS


@pytest.mark.parametrize(
    ("frame_type", "imagetyp"),
    [("dark", "DARK"), ("FLAT", "FLAT"), ("Bias", "BIAS"), ("light", "LIGHT")],
)
def test_nina_header_keywords(frame_type, imagetyp):
    cam = syn.Camera(binning="2x2", readout_mode="High Gain Mode", gain=100, offset=50)
    cest = timezone(timedelta(hours=2))
    hdr = syn.nina_header(
        frame_type=frame_type,
        camera=cam,
        exposure_s=120.0,
        temperature_c=-9.8,
        set_temperature_c=-10.0,
        filter_name="Ha",
        rotation_deg=87.25,
        captured_at=datetime(2024, 3, 9, 1, 2, 3, 456789, tzinfo=cest),
        observatory="obs-1",
    )
    hdr = fits.Header.fromstring(hdr.tostring())  # round-trip through the card format
    assert hdr["IMAGETYP"] == imagetyp
    assert hdr["INSTRUME"] == "ZWO ASI2600MM Pro"
    assert hdr["GAIN"] == 100 and hdr["OFFSET"] == 50
    assert (hdr["XBINNING"], hdr["YBINNING"]) == (2, 2)
    assert hdr["READOUTM"] == "High Gain Mode"
    assert hdr["EXPTIME"] == 120.0 and hdr["EXPOSURE"] == 120.0
    assert hdr["CCD-TEMP"] == -9.8 and hdr["SET-TEMP"] == -10.0
    assert hdr["ROTATANG"] == 87.25
    assert hdr["DATE-OBS"] == "2024-03-08T23:02:03.456"  # converted to UTC, ms precision
    assert hdr["XPIXSZ"] == pytest.approx(2 * cam.pixel_size_um)
    assert hdr["SWCREATE"].startswith("N.I.N.A. 3.1")
    assert "TELESCOP" in hdr
    if imagetyp in ("FLAT", "LIGHT"):
        assert hdr["FILTER"] == "Ha"
    else:
        assert "FILTER" not in hdr
    assert ("OBJECT" in hdr) == (imagetyp == "LIGHT")


def test_nina_header_omits_unset_optional_keywords():
    hdr = syn.nina_header(
        frame_type="dark",
        camera=CAM,
        exposure_s=60,
        temperature_c=None,
        captured_at=datetime(2024, 1, 1, 0, 0, 0),  # naive: taken as UTC
    )
    for key in ("READOUTM", "ROTATANG", "ROTATOR", "FILTER", "CCD-TEMP", "SET-TEMP", "OBJECT"):
        assert key not in hdr
    assert hdr["DATE-OBS"] == "2024-01-01T00:00:00.000"
    assert (hdr["XBINNING"], hdr["YBINNING"]) == (1, 1)
    with pytest.raises(ValueError):
        syn.nina_header(
            frame_type="science", camera=CAM, exposure_s=1, temperature_c=0,
            captured_at=datetime(2024, 1, 1, tzinfo=UTC),
        )  # fmt: skip


def test_fits_bytes_round_trip_exact_uint16():
    data = syn.light_frame(CAM, filter_name="L", exposure_s=600, temperature_c=0, rng=_rng(9))[0]
    data[0, 0], data[0, 1], data[0, 2] = 0, 32768, 65535
    hdr = syn.nina_header(
        frame_type="light",
        camera=CAM,
        exposure_s=600,
        temperature_c=0.1,
        set_temperature_c=0,
        filter_name="L",
        captured_at=datetime(2024, 6, 1, 21, 30, tzinfo=UTC),
    )
    blob = syn.fits_bytes(data, hdr)
    assert len(blob) % 2880 == 0
    assert blob[:30] == b"SIMPLE  =                    T"
    with fits.open(io.BytesIO(blob)) as hdul:
        assert len(hdul) == 1
        out_hdr = hdul[0].header
        assert out_hdr["BITPIX"] == 16 and out_hdr["BZERO"] == 32768
        assert (out_hdr["NAXIS1"], out_hdr["NAXIS2"]) == (CAM.width, CAM.height)
        for key in ("IMAGETYP", "INSTRUME", "GAIN", "FILTER", "EXPTIME", "CCD-TEMP", "DATE-OBS"):
            assert out_hdr[key] == hdr[key]
        out = hdul[0].data
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out, data)
    # raw layout: big-endian int16 with BZERO 32768
    pix = np.frombuffer(
        blob, dtype=">i2", count=3, offset=blob.index(b"END" + b" " * 77) // 2880 * 2880 + 2880
    )
    assert pix.tolist() == [-32768, 0, 32767]


def test_fits_bytes_ignores_structural_keywords_in_header():
    data = syn.bias_frame(CAM, rng=_rng())
    hdr = fits.Header([("NAXIS1", 9), ("BITPIX", -32), ("BZERO", 0), ("INSTRUME", "x")])
    with fits.open(io.BytesIO(syn.fits_bytes(data, hdr))) as hdul:
        assert hdul[0].header["NAXIS1"] == CAM.width
        assert hdul[0].header["INSTRUME"] == "x"
        np.testing.assert_array_equal(hdul[0].data, data)
