"""XISF frames in the numerics (issue 15): samples read band by band whatever their format,
byte order, codec and shuffling; damaged blocks refused; XISF darks stacked with FITS
ones into a master, and an XISF light calibrated into a FITS file."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from astropy.io import fits

from calib_core.xisfheader import InvalidXisfError
from calib_stack import xisfio
from calib_stack.calibrate import calibrate_light
from calib_stack.fitsio import XisfImage, open_image, read_image
from calib_stack.stacking import stack_files
from tests.support.xisf import NINA_KEYWORDS, NINA_PROPERTIES, xisf_bytes

SHAPE = (37, 23)


def pixels(dtype, seed=3) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(0, 250, SHAPE)
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.float32, np.float64])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize(
    "codec, shuffle",
    [(None, False), ("zlib", False), ("zlib", True), ("lz4", True), ("lz4hc", False)]
    + [("zstd", True)],
)
def test_samples_are_read_as_stored(tmp_path, dtype, big_endian, codec, shuffle):
    image = pixels(dtype)
    path = tmp_path / "frame.fits"  # a name that says nothing: the signature does
    path.write_bytes(xisf_bytes(image, codec=codec, shuffle=shuffle, big_endian=big_endian))
    with open_image(path) as frame:
        assert isinstance(frame, XisfImage) and frame.shape == SHAPE
        bands = [frame.read_rows(y0, min(y0 + 5, SHAPE[0])) for y0 in range(0, SHAPE[0], 5)]
    np.testing.assert_array_equal(np.vstack(bands), image.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bounds", ["0:1", "-0.5:1.5"])
def test_float_samples_are_read_from_their_bounds_to_adu(tmp_path, dtype, bounds):
    """PixInsight saves 16-bit data as floats in 0..1: read back as 0..65535."""
    low, high = map(float, bounds.split(":"))
    adu = np.round(np.random.default_rng(4).uniform(0, 65535, SHAPE))
    stored = (low + adu / 65535 * (high - low)).astype(dtype)
    path = tmp_path / "resaved.xisf"
    path.write_bytes(xisf_bytes(stored, codec="zstd", image_attributes={"bounds": bounds}))
    np.testing.assert_allclose(read_image(path), adu, rtol=0, atol=0.02)


def test_a_compressed_block_is_decompressed_once_beside_the_frame(tmp_path, monkeypatch):
    path = tmp_path / "frame.xisf"
    image = pixels(np.uint16)
    path.write_bytes(xisf_bytes(image, codec="zlib", shuffle=True))
    calls = []
    decompress = xisfio._decompress
    monkeypatch.setattr(xisfio, "_decompress", lambda *a: calls.append(a) or decompress(*a))
    with open_image(path) as frame:
        bands = [frame.read_rows(y0, min(y0 + 10, SHAPE[0])) for y0 in range(0, SHAPE[0], 10)]
    np.testing.assert_array_equal(np.vstack(bands), image)
    assert len(calls) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["frame.xisf"]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00" * 40, "cannot read image rows 0-37"),
        (zlib.compress(bytes(10 * SHAPE[0] * SHAPE[1])), "decompresses to more than the 1702"),
        (zlib.compress(bytes(100)), "holds 100 bytes once decompressed, the header declares 1702"),
    ],
    ids=["not zlib", "a decompression bomb", "too short"],
)
def test_a_damaged_block_is_refused_naming_the_file(tmp_path, data, message):
    path = tmp_path / "frame.xisf"
    path.write_bytes(xisf_bytes(pixels(np.uint16), codec="zlib", block=data))
    with pytest.raises(InvalidXisfError, match=message) as refused:
        read_image(path)
    assert str(path) in str(refused.value)


def test_xisf_darks_stack_with_fits_ones_and_calibrate_an_xisf_light(tmp_path, frame_writer):
    rng = np.random.default_rng(8)
    darks = [np.round(rng.normal(100, 5, SHAPE)).astype(np.uint16) for _ in range(4)]
    paths = []
    for index, dark in enumerate(darks):
        if index % 2:
            paths.append(frame_writer(f"dark{index}.fits", dark))
        else:
            path = tmp_path / f"dark{index}.xisf"
            path.write_bytes(xisf_bytes(dark, codec="lz4", shuffle=True))
            paths.append(path)
    master = stack_files(paths, method="mean").image
    np.testing.assert_allclose(master, np.mean(darks, axis=0), rtol=1e-6)
    resaved = tmp_path / "dark0-pixinsight.xisf"  # the first dark as PixInsight re-saves it
    resaved.write_bytes(
        xisf_bytes(darks[0].astype(np.float32) / 65535, image_attributes={"bounds": "0:1"})
    )
    again = stack_files([resaved, *paths[1:]], method="mean").image
    np.testing.assert_allclose(again, master, rtol=1e-5)

    fits.PrimaryHDU(master).writeto(tmp_path / "master.fits")
    light = np.round(rng.normal(1500, 30, SHAPE)).astype(np.uint16)
    (tmp_path / "light.xisf").write_bytes(
        xisf_bytes(light, keywords=NINA_KEYWORDS, properties=NINA_PROPERTIES, codec="zlib")
    )
    output = tmp_path / "calibrated.fits"
    calibrate_light(
        tmp_path / "light.xisf",
        output,
        dark=tmp_path / "master.fits",
        cards=[("CALSTAT", "done", "")],
    )
    with fits.open(output) as calibrated:
        header, data = calibrated[0].header, calibrated[0].data
        assert (header["INSTRUME"], header["GAIN"], header["CALSTAT"]) == (
            "ZWO ASI2600MM Pro",
            100,
            "done",
        )
        assert "BZERO" not in header and data.shape == SHAPE
        np.testing.assert_allclose(data, light - master, rtol=1e-6)
