import tracemalloc
import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clip

from calib_stack import stacking
from calib_stack.fitsio import InvalidFitsError, read_image
from calib_stack.stacking import ShapeMismatchError, stack_files

SHAPE = (41, 29)


@pytest.fixture
def noisy_frames() -> np.ndarray:
    """Nine integer-valued bias-like frames with a few cosmic-ray hits."""
    rng = np.random.default_rng(11)
    frames = np.round(rng.normal(1000, 15, (9, *SHAPE)))
    frames[rng.random(frames.shape) < 0.01] = 30000
    return frames


def write_all(frame_writer, frames, layout="uint16", prefix="f"):
    return [frame_writer(f"{prefix}{i:02d}.fits", frame, layout) for i, frame in enumerate(frames)]


def test_sigma_clip_stack_equals_astropy_on_the_frames(frame_writer, noisy_frames):
    paths = write_all(frame_writer, noisy_frames)
    result = stack_files(paths, method="sigma_clip", sigma=2.5, maxiters=4)
    cube = noisy_frames.astype(np.float32)
    clipped = sigma_clip(cube, sigma=2.5, maxiters=4, axis=0, cenfunc="median", stdfunc="std")
    np.testing.assert_allclose(result.image, clipped.mean(axis=0), rtol=1e-6, atol=0)
    assert result.image.dtype == np.float32
    assert (result.n_frames, result.shape) == (9, SHAPE)
    assert result.rejected_fraction == clipped.mask.sum() / cube.size
    assert result.rejected_fraction > 0.01


@pytest.mark.parametrize("method", ["mean", "median", "sigma_clip"])
def test_band_height_does_not_change_a_single_bit(frame_writer, noisy_frames, monkeypatch, method):
    paths = write_all(frame_writer, noisy_frames)
    whole = stack_files(paths, method=method).image
    for rows in (1, 4, 7, 40):
        monkeypatch.setattr(stacking, "_band_rows", lambda *args, rows=rows: rows)
        assert np.array_equal(stack_files(paths, method=method).image, whole), rows


def test_tiny_memory_limit_still_stacks_in_single_rows(frame_writer, noisy_frames):
    paths = write_all(frame_writer, noisy_frames)
    fractions = []
    result = stack_files(paths, method="mean", memory_limit_mb=0, progress=fractions.append)
    assert np.array_equal(result.image, noisy_frames.mean(axis=0).astype(np.float32))
    assert len(fractions) == SHAPE[0]  # one band per row
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_band_height_fits_the_memory_limit():
    n, height, width, limit_mb = 50, 6248, 4176, 1024
    rows = stacking._band_rows(n, height, width, limit_mb)
    assert 1 <= rows < height
    assert n * rows * width * 4 + height * width * 4 <= limit_mb * 2**20
    assert stacking._band_rows(3, 100, 100, 1024) == 100


def test_peak_memory_is_bounded_by_the_limit_not_the_stack(frame_writer):
    frames = np.random.default_rng(5).integers(0, 60000, (20, 512, 1024))
    paths = write_all(frame_writer, frames)
    stack_size = frames.shape[0] * 512 * 1024 * 4  # 40 MiB as a float32 cube
    stack_files(paths[:2], method="sigma_clip", memory_limit_mb=4)  # warm-up, compile
    tracemalloc.start()
    try:
        result = stack_files(paths, method="sigma_clip", memory_limit_mb=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.shape == (512, 1024)
    assert peak < 4.5 * 2**20 < stack_size / 8


def test_all_input_layouts_give_the_same_stack(frame_writer, noisy_frames):
    results = {
        layout: stack_files(
            write_all(frame_writer, noisy_frames, layout, prefix=layout), method="sigma_clip"
        ).image
        for layout in ("uint16", "int16", "float32", "extension", "rice")
    }
    for layout, image in results.items():
        assert np.array_equal(image, results["uint16"]), layout


def test_shape_mismatch_names_the_odd_frames(frame_writer, noisy_frames):
    paths = write_all(frame_writer, noisy_frames[:5])
    odd = [
        frame_writer("wide.fits", np.zeros((41, 30))),
        frame_writer("small.fits", np.zeros((10, 10))),
    ]
    with pytest.raises(ShapeMismatchError) as caught:
        stack_files([*paths[:2], odd[0], *paths[2:], odd[1]], method="mean")
    assert caught.value.paths == [str(path) for path in odd]
    message = str(caught.value)
    assert "wide.fits (30x41)" in message and "small.fits (10x10)" in message
    assert "5 of 7 are 29x41" in message
    assert "f00.fits" not in message


def test_master_of_another_size_is_refused(frame_writer, noisy_frames):
    paths = write_all(frame_writer, noisy_frames[:3])
    bias = frame_writer("bias.fits", np.zeros((8, 8)), "float32")
    with pytest.raises(ShapeMismatchError, match="bias.fits") as caught:
        stack_files(paths, method="mean", subtract=bias)
    assert caught.value.paths == [str(bias)]


def test_corrupt_frame_is_named_before_any_stacking(frame_writer, noisy_frames, tmp_path):
    paths = write_all(frame_writer, noisy_frames[:4])
    broken = tmp_path / "broken.fits"
    broken.write_bytes(paths[0].read_bytes()[:4000])
    calls = []
    with pytest.raises(InvalidFitsError) as caught:
        stack_files([*paths, broken], method="mean", progress=calls.append)
    assert caught.value.path == str(broken)
    assert "broken.fits" in str(caught.value)
    assert calls == []


def test_ccd_dark_is_bias_subtracted_and_divided_by_exposure(frame_writer):
    rng = np.random.default_rng(2)
    bias = np.round(rng.normal(500, 3, SHAPE))
    rate = rng.uniform(0.5, 2.0, SHAPE)  # electrons per second, per pixel
    exposures = [10.0, 20.0, 40.0, 60.0, 120.0]
    paths = [
        frame_writer(f"dark{i}.fits", np.round(bias + rate * t), "uint16")
        for i, t in enumerate(exposures)
    ]
    bias_path = frame_writer("master_bias.fits", bias, "float32")
    result = stack_files(paths, method="median", subtract=bias_path, exposures=exposures)
    expected = np.median(
        [
            (read_image(p) - read_image(bias_path)) / t
            for p, t in zip(paths, exposures, strict=True)
        ],
        axis=0,
    )
    np.testing.assert_allclose(result.image, expected, rtol=1e-6)
    np.testing.assert_allclose(result.image, rate, atol=0.05)  # rounding of the integer ADUs


def test_flats_are_dark_subtracted_normalised_and_scaled_to_median_one(frame_writer):
    rng = np.random.default_rng(4)
    vignetting = np.linspace(0.8, 1.2, SHAPE[0] * SHAPE[1]).reshape(SHAPE)
    rng.shuffle(vignetting.reshape(-1))
    dark = np.full(SHAPE, 300.0)
    levels = [8000.0, 12000.0, 20000.0, 25000.0]
    paths = [
        frame_writer(f"flat{i}.fits", np.round(dark + level * vignetting), "uint16")
        for i, level in enumerate(levels)
    ]
    dark_path = frame_writer("master_dark.fits", dark, "float32")
    fractions = []
    result = stack_files(
        paths, method="mean", subtract=dark_path, normalise=True, progress=fractions.append
    )
    assert float(np.median(result.image)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(result.image, vignetting / np.median(vignetting), rtol=2e-4)
    assert len(fractions) == len(levels) + 1  # one median pass per frame, one band
    assert fractions[-1] == 1.0


def test_ccd_flats_subtract_bias_and_the_dark_rate_times_their_exposure(frame_writer):
    rng = np.random.default_rng(5)
    vignetting = np.linspace(0.8, 1.2, SHAPE[0] * SHAPE[1]).reshape(SHAPE)
    rng.shuffle(vignetting.reshape(-1))
    bias = np.full(SHAPE, 500.0)
    rate = rng.uniform(5.0, 50.0, SHAPE)  # exaggerated, so a missed dark term shows
    exposures = [2.0, 4.0, 8.0]
    paths = [
        frame_writer(f"ccdflat{i}.fits", np.round(bias + rate * t + 10000.0 * vignetting), "uint16")
        for i, t in enumerate(exposures)
    ]
    bias_path = frame_writer("master_bias.fits", bias, "float32")
    rate_path = frame_writer("master_dark_rate.fits", rate, "float32")
    result = stack_files(
        paths,
        method="mean",
        subtract=bias_path,
        dark_rate=rate_path,
        exposures=exposures,
        normalise=True,
    )
    np.testing.assert_allclose(result.image, vignetting / np.median(vignetting), rtol=2e-4)
    without_dark = stack_files(paths, method="mean", subtract=bias_path, normalise=True)
    assert np.abs(without_dark.image - vignetting / np.median(vignetting)).max() > 0.01


def test_flat_normalisation_uses_each_frames_exact_median(frame_writer):
    frames = [np.arange(1, 13, dtype=float).reshape(3, 4) * k for k in (1.0, 3.0)]
    paths = write_all(frame_writer, frames)
    result = stack_files(paths, method="mean", normalise=True)
    # Both frames normalise to arange / 6.5 (median of 1..12), the master to median 1.
    np.testing.assert_allclose(result.image, frames[0] / 6.5, rtol=1e-6)


def test_non_finite_pixels_are_ignored(frame_writer, noisy_frames):
    frames = noisy_frames.astype(np.float32)
    frames[0, 3, 4] = np.nan
    frames[1:, 7, 8] = np.nan  # only one finite value left
    frames[:, 9, 9] = np.nan  # none left
    paths = write_all(frame_writer, frames, "float32")
    result = stack_files(paths, method="sigma_clip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sigma_clip(frames, axis=0, cenfunc="median", stdfunc="std").mean(axis=0)
    np.testing.assert_allclose(result.image, expected.filled(np.nan), rtol=1e-6, equal_nan=True)
    assert result.image[7, 8] == frames[0, 7, 8]
    assert np.isnan(result.image[9, 9])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "average"}, "unknown stacking method"),
        ({"method": "mean", "exposures": [1.0]}, "exposures given"),
        ({"method": "mean", "exposures": [1.0, 0.0]}, "positive"),
        ({"method": "mean", "exposures": [1.0, 2.0], "normalise": True}, "only scale dark_rate"),
    ],
)
def test_invalid_arguments_are_refused(frame_writer, noisy_frames, kwargs, message):
    paths = write_all(frame_writer, noisy_frames[:2])
    with pytest.raises(ValueError, match=message):
        stack_files(paths, **kwargs)


def test_empty_frame_list_is_refused():
    with pytest.raises(ValueError, match="no frames"):
        stack_files([], method="mean")


def test_a_master_per_frame_is_subtracted_from_its_own_frame(frame_writer):
    frames = [np.full((4, 6), 100.0 * (i + 1)) for i in range(3)]
    paths = write_all(frame_writer, frames)
    darks = write_all(frame_writer, [np.full((4, 6), 10.0), np.full((4, 6), 40.0)], prefix="d")
    result = stack_files(paths, method="mean", subtract=[darks[0], darks[1], darks[0]])
    np.testing.assert_array_equal(result.image, np.full((4, 6), (90 + 160 + 290) / 3, np.float32))
    with pytest.raises(ValueError, match="2 masters to subtract given for 3 frames"):
        stack_files(paths, method="mean", subtract=darks)
