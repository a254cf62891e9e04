import io

import numpy as np
import pytest
from PIL import Image

from calib_stack.preview import histogram_png, preview_png


def decode(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png))


def test_preview_is_downsampled_keeping_aspect_and_stretched():
    gradient = np.tile(np.arange(1000, dtype=np.float32), (600, 1))  # 1000 wide, 600 high
    picture = decode(preview_png(gradient, max_size=200))
    assert picture.mode == "L"
    assert picture.size == (200, 120)
    row = np.asarray(picture)[60].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert row[100] > 128  # asinh lifts the faint half


def test_preview_block_mean_ignores_nans_and_odd_edges():
    image = np.ones((101, 57), np.float32)
    image[:50] = 0.0
    image[0, 0] = np.nan
    pixels = np.asarray(decode(preview_png(image, max_size=20)))
    assert pixels.shape == (17, 10)  # blocks of ceil(101 / 20) = 6 pixels
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255


def test_small_images_keep_their_size_and_constant_images_are_grey():
    picture = decode(preview_png(np.full((30, 40), 7.0, np.float32)))
    assert picture.size == (40, 30)
    assert set(np.asarray(picture).ravel()) == {128}


def test_all_nan_preview_is_black_and_empty_is_refused():
    assert np.asarray(decode(preview_png(np.full((4, 4), np.nan, np.float32)))).max() == 0
    with pytest.raises(ValueError):
        preview_png(np.zeros((0, 5), np.float32))


def test_histogram_has_requested_size_and_log_bars():
    values = np.concatenate([np.zeros(10000), np.ones(10)]).astype(np.float32)
    picture = np.asarray(decode(histogram_png(values.reshape(-1, 1), bins=2, width=100, height=50)))
    assert picture.shape == (50, 100)
    left = np.count_nonzero(picture[:, 25] < 128)
    right = np.count_nonzero(picture[:, 75] < 128)
    assert left == 50  # tallest bar fills the height
    assert right == pytest.approx(50 * np.log10(11) / np.log10(10001), abs=1)


def test_histogram_of_a_constant_or_empty_image():
    assert decode(histogram_png(np.full((5, 5), 3.0, np.float32))).size == (512, 200)
    blank = np.asarray(
        decode(histogram_png(np.full((5, 5), np.nan, np.float32), width=64, height=32))
    )
    assert blank.shape == (32, 64) and blank.min() == 255
