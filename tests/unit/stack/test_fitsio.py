import numpy as np
import pytest
from astropy.io import fits

from calib_core.fitsheader import HeaderIncompleteError, InvalidFitsError, image_layout
from calib_stack.fitsio import FitsImage, read_image

BLOCK = 2880


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 30000, (37, 23)).astype(np.float32)


@pytest.mark.parametrize("layout", ["uint16", "int16", "float32", "extension", "rice"])
def test_every_layout_reads_back_the_same_pixels(frame_writer, pixels, layout):
    path = frame_writer("frame.fits", pixels, layout, {"IMAGETYP": "DARK", "EXPTIME": 30.0})
    with FitsImage.open(path) as image:
        assert image.path == path
        assert image.shape == (37, 23)
        assert image.dtype == {"int16": np.int16, "uint16": np.uint16, "rice": np.uint16}.get(
            layout, np.float32
        )
        assert image.header["IMAGETYP"] == "DARK"
        assert image.header["EXPTIME"] == 30.0
        band = image.read_rows(10, 17)
        assert band.dtype == np.float32
        assert np.array_equal(band, pixels[10:17])
        assert image.read_rows(5, 5).shape == (0, 23)
    assert np.array_equal(read_image(path), pixels)


def test_bscale_bzero_and_blank_are_applied(tmp_path):
    raw = np.array([[0, 1, 2], [-7, 100, 3]], dtype=np.int16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"] = 0.5
    hdu.header["BZERO"] = 10.0
    hdu.header["BLANK"] = -7
    hdu.writeto(tmp_path / "scaled.fits")
    data = read_image(tmp_path / "scaled.fits")
    assert np.array_equal(data, [[10.0, 10.5, 11.0], [np.nan, 60.0, 11.5]], equal_nan=True)


def test_rows_outside_the_image_are_refused(frame_writer, pixels):
    with FitsImage.open(frame_writer("f.fits", pixels)) as image, pytest.raises(ValueError):
        image.read_rows(30, 38)


@pytest.mark.parametrize("layout", ["uint16", "float32", "extension", "rice"])
def test_the_layout_names_the_bytes_the_image_needs(frame_writer, pixels, layout):
    """A file shorter than that is truncated; the rest of the last block is padding."""
    data = frame_writer("frame.fits", pixels, layout, {"IMAGETYP": "DARK"}).read_bytes()
    found = image_layout(data)
    header, needed = found.header, found.needed
    assert (header["NAXIS1"], header["NAXIS2"]) == (23, 37)
    assert len(data) - BLOCK < needed <= len(data)
    assert found.compressed == (layout == "rice")
    assert found.hdu_index == (0 if layout in ("uint16", "float32") else 1)
    if layout in ("uint16", "float32"):
        header_bytes = data.index(b"END" + b" " * 77) // BLOCK * BLOCK + BLOCK
        assert needed == header_bytes + 37 * 23 * abs(header["BITPIX"]) // 8
    with frame_writer("short.fits", pixels, layout).open("r+b") as short:
        short.truncate(needed - 1)
    with pytest.raises(InvalidFitsError, match="truncated"):
        FitsImage.open(short.name)


def test_header_from_a_prefix_of_a_primary_image(frame_writer, pixels):
    data = frame_writer("f.fits", pixels, "uint16", {"IMAGETYP": "FLAT"}).read_bytes()
    header = image_layout(data[:BLOCK]).header
    assert (header["NAXIS1"], header["NAXIS2"], header["BITPIX"]) == (23, 37, 16)
    assert header["IMAGETYP"] == "FLAT"


def test_extension_header_merges_primary_keywords_extension_wins(tmp_path):
    primary = fits.PrimaryHDU()
    primary.header["IMAGETYP"] = "LIGHT"
    primary.header["EXPTIME"] = 1.0
    extension = fits.ImageHDU(np.zeros((4, 6), np.int16))
    extension.header["EXPTIME"] = 2.5
    fits.HDUList([primary, extension]).writeto(tmp_path / "ext.fits")
    header = image_layout((tmp_path / "ext.fits").read_bytes()[: 2 * BLOCK]).header
    assert (header["NAXIS1"], header["NAXIS2"]) == (6, 4)
    assert header["IMAGETYP"] == "LIGHT"
    assert header["EXPTIME"] == 2.5
    assert "SIMPLE" not in header and "EXTEND" not in header


def test_compressed_header_is_translated_to_the_image(frame_writer, pixels):
    data = frame_writer("c.fits", pixels, "rice", {"IMAGETYP": "BIAS"}).read_bytes()
    header = image_layout(data[: 2 * BLOCK]).header
    assert (header["NAXIS"], header["NAXIS1"], header["NAXIS2"]) == (2, 23, 37)
    assert (header["BITPIX"], header["BZERO"]) == (16, 32768)
    assert header["IMAGETYP"] == "BIAS"
    assert not any(key.startswith(("ZNAXIS", "TFORM", "ZCMPTYPE")) for key in header)


def test_short_prefix_asks_for_more_bytes(frame_writer, pixels):
    data = frame_writer("c.fits", pixels, "rice").read_bytes()
    with pytest.raises(HeaderIncompleteError) as caught:
        image_layout(data[:BLOCK])
    assert caught.value.needed == 2 * BLOCK
    assert isinstance(caught.value, InvalidFitsError)
    with pytest.raises(HeaderIncompleteError):
        image_layout(data[:100])


def test_prefix_without_image_or_not_fits_is_invalid(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1, 2])])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "table.fits")
    with pytest.raises(InvalidFitsError, match="no 2-D image"):
        image_layout((tmp_path / "table.fits").read_bytes() + b"\0" * BLOCK)
    with pytest.raises(InvalidFitsError, match="not a FITS file"):
        image_layout(b"PK\x03\x04" + b"\0" * BLOCK)
    cube = fits.PrimaryHDU(np.zeros((3, 4, 5), np.int16)).header.tostring().encode()
    with pytest.raises(InvalidFitsError, match="not a 2-D image"):
        image_layout(cube)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no image", "missing"])
def test_unreadable_files_raise_invalid_fits_naming_the_file(
    frame_writer, tmp_path, pixels, damage
):
    path = tmp_path / "bad.fits"
    if damage == "garbage":
        path.write_bytes(b"not a fits file at all" * 200)
    elif damage == "truncated":
        data = frame_writer("good.fits", pixels).read_bytes()
        path.write_bytes(data[: BLOCK + 100])
    elif damage == "no image":
        fits.PrimaryHDU().writeto(path)
    with pytest.raises(InvalidFitsError) as caught:
        FitsImage.open(path)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_corrupt_compressed_tiles_raise_invalid_fits_naming_the_file(
    frame_writer, pixels, tmp_path
):
    data = bytearray(frame_writer("c.fits", pixels, "rice").read_bytes())
    data[2 * BLOCK : 2 * BLOCK + 64] = b"\x7f" * 64  # tile descriptors point past the heap
    path = tmp_path / "corrupt.fits"
    path.write_bytes(bytes(data))
    with FitsImage.open(path) as image, pytest.raises(InvalidFitsError) as caught:
        image.read_rows(0, image.shape[0])
    assert caught.value.path == str(path)
