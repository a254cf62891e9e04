"""A frame's robust statistics for the gates (calib_stack.framestats), against numpy on
the rows it samples."""

from __future__ import annotations

import numpy as np

from calib_stack import framestats, synthetic
from tests.support.xisf import xisf_bytes


def write(tmp_path, image: np.ndarray):
    path = tmp_path / "frame.fits"
    path.write_bytes(synthetic.fits_bytes(image, None))
    return path


def test_statistics_of_the_sampled_rows_equal_numpys(tmp_path, monkeypatch):
    monkeypatch.setattr(framestats, "SAMPLE_PIXELS", 64 * 10)  # every 4th of 40 rows
    rng = np.random.default_rng(3)
    image = rng.normal(1000.0, 20.0, (40, 64)).round()
    image[::4][:2, :10] = 65535  # 20 saturated pixels among the sampled ones
    measured = framestats.measure_frame(write(tmp_path, image))

    sample = image[::4].astype(np.float32)
    median = np.median(sample)
    assert (measured.width, measured.height, measured.full_scale) == (64, 40, 65535.0)
    assert measured.median == median
    assert measured.noise == 1.4826 * np.median(np.abs(sample - median))
    assert measured.saturated_fraction == 20 / sample.size


def test_a_small_frame_is_measured_whole(tmp_path):
    image = np.full((8, 8), 30000.0)
    measured = framestats.measure_frame(write(tmp_path, image))
    assert (measured.median, measured.noise, measured.saturated_fraction) == (30000.0, 0.0, 0.0)


def test_an_xisf_frame_is_measured_like_its_fits_twin(tmp_path):
    """The gates read N.I.N.A.'s XISF frames too (told by signature), compressed or not."""
    rng = np.random.default_rng(4)
    image = rng.normal(1000.0, 20.0, (40, 64)).round().astype(np.uint16)
    fits_measured = framestats.measure_frame(write(tmp_path, image))
    xisf = tmp_path / "frame.xisf"
    xisf.write_bytes(xisf_bytes(image, codec="zlib", shuffle=True))
    assert framestats.measure_frame(xisf) == fits_measured
