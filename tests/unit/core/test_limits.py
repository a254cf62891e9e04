"""SPEC §12 limits as pure rules: the ranges of numeric fields, and what a FITS file's
first bytes may declare (pixels, a compressed image's by ZNAXISn; axes; header length),
decided without asking for more bytes than the header limit."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calib_core.fitsheader import (
    BLOCK,
    HeaderIncompleteError,
    ImageLimitError,
    InvalidFitsError,
    image_layout,
    read_image_layout,
)
from calib_core.limits import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    FIELD_RANGES,
    ImageLimits,
    OutOfRangeError,
    check_fields,
    out_of_range,
)
from calib_stack import synthetic
from tests.support.hostile import (
    compressed_header,
    declared_image,
    endless_header,
    header_bytes,
    hostile_fits,
)

LIMITS = ImageLimits()


# ---- numeric ranges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "inside", "outside"),
    [
        ("width", [1, 100_000], [0, 100_001, -1, 2**64 - 1, 10**40]),
        ("height", [1, 64], [0, 100_001]),
        ("exposure_s", [0, 0.001, 86_400], [-0.001, 86_400.01, 1e308]),
        ("temperature_c", [-273, -10.5, 100], [-273.5, 100.1]),
        ("set_temperature_c", [-273, 0, 100], [-300, 150]),
        ("gain", [0, 1_000_000], [-1, 1_000_001]),
        ("offset", [0, 50], [-0.5, 1e7]),
        ("rotation_deg", [-720.0, 0, 359.9], []),
    ],
)
def test_each_numeric_field_has_its_range(field, inside, outside):
    for value in inside:
        assert out_of_range(field, value) is None, value
    for value in outside:
        refused = out_of_range(field, value)
        assert refused is not None and refused.field == field, value
        assert str(refused).startswith(f"{field} = {value} is out of range"), str(refused)


@pytest.mark.parametrize("field", sorted(FIELD_RANGES))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_numeric_field_takes_a_value_that_is_not_finite(field, value):
    refused = out_of_range(field, value)
    assert refused is not None and str(refused) == f"{field} = {value} is not a finite number"


def test_fields_without_a_range_and_absent_values_pass():
    assert out_of_range("camera_name", "anything") is None
    assert out_of_range("gain", None) is None
    check_fields({"camera_name": "x", "gain": None, "width": 10})


def test_where_a_value_came_from_is_named():
    with pytest.raises(OutOfRangeError) as refused:
        check_fields({"gain": 5.0, "width": 2**64 - 1}, "form field '{field}'")
    assert str(refused.value) == (
        f"form field 'width' = {2**64 - 1} is out of range for width (1 to 100000)"
    )
    assert refused.value.field == "width"


# ---- what a header may declare ---------------------------------------------------------------


def test_the_defaults_are_the_specs():
    assert (LIMITS.max_pixels, LIMITS.max_header_bytes, LIMITS.max_axes) == (
        250_000_000,
        1024 * 1024,
        3,
    )
    assert (DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_HEADER_BYTES) == (250_000_000, 1_048_576)


def test_a_compressed_image_is_judged_by_its_uncompressed_size():
    data = compressed_header(60_000, 60_000)
    assert image_layout(data).header["NAXIS1"] == 60_000  # what it would be without limits
    with pytest.raises(ImageLimitError) as refused:
        image_layout(data, LIMITS)
    assert str(refused.value) == (
        "image too large: its header declares 60000 x 60000 = 3600000000 pixels"
        " (ZNAXIS1 x ZNAXIS2), more than the limit of 250000000 (CALIB_MAX_IMAGE_PIXELS)"
    )


def test_an_image_is_judged_by_its_naxis_and_may_reach_the_limit_exactly():
    with pytest.raises(ImageLimitError, match=r"20000 x 20000 = 400000000 pixels \(NAXIS1"):
        image_layout(declared_image(NAXIS1=20_000, NAXIS2=20_000), LIMITS)
    exactly = ImageLimits(max_pixels=64 * 48)
    assert image_layout(declared_image(), exactly).header["NAXIS1"] == 64
    with pytest.raises(ImageLimitError, match="more than the limit of 3071"):
        image_layout(declared_image(), ImageLimits(max_pixels=64 * 48 - 1))


def test_an_image_has_at_most_three_axes():
    three = declared_image(NAXIS=3, NAXIS3=1)
    assert image_layout(three, LIMITS).header["NAXIS"] == 3
    with pytest.raises(ImageLimitError) as refused:
        image_layout(declared_image(NAXIS=4, NAXIS3=1, NAXIS4=1), LIMITS)
    assert str(refused.value) == "image has 4 axes (NAXIS = 4), more than the limit of 3"
    with pytest.raises(InvalidFitsError, match="not a 2-D image"):
        image_layout(declared_image(NAXIS=3, NAXIS3=2), LIMITS)


def test_a_header_that_does_not_end_within_the_limit_is_refused_without_asking_for_more():
    data = endless_header(2 * 1024 * 1024)
    with pytest.raises(HeaderIncompleteError):
        image_layout(data[: 16 * BLOCK])  # without limits: give me more
    with pytest.raises(HeaderIncompleteError):
        image_layout(data[: 16 * BLOCK], LIMITS)  # more, but still within the limit
    for prefix in (data[: LIMITS.max_header_bytes], data):
        with pytest.raises(ImageLimitError) as refused:
            image_layout(prefix, LIMITS)
        assert str(refused.value).startswith(
            "header longer than 1048576 bytes (CALIB_MAX_HEADER_BYTES)"
        )


def test_a_complete_header_ending_past_the_limit_is_refused():
    comments = [("COMMENT", "x")] * (2 * BLOCK // 80)
    data = header_bytes(("SIMPLE", "T"), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", 4), ("NAXIS2", 4))
    long = header_bytes(*[("SIMPLE", "T"), ("BITPIX", 16), ("NAXIS", 2)], *comments)
    assert image_layout(data, ImageLimits(max_header_bytes=BLOCK)).data_offset == BLOCK
    with pytest.raises(ImageLimitError, match="header longer than 2880 bytes"):
        image_layout(long, ImageLimits(max_header_bytes=BLOCK))


def test_data_declared_before_the_image_does_not_make_the_reader_skip_far_ahead():
    """A first HDU declaring 900 MB of data would put the image's header 900 MB in: the
    limit refuses it rather than ask for a prefix that long."""
    primary = header_bytes(("SIMPLE", "T"), ("BITPIX", 8), ("NAXIS", 1), ("NAXIS1", 900_000_000))
    with pytest.raises(HeaderIncompleteError) as asked:
        image_layout(primary)
    assert asked.value.needed > 900_000_000
    with pytest.raises(ImageLimitError, match="header longer than"):
        image_layout(primary, LIMITS)


@pytest.mark.parametrize(
    ("cards", "words"),
    [
        ({"NAXIS1": -5}, "NAXIS1 = -5"),
        ({"BITPIX": 7}, "BITPIX = 7"),
        ({"PCOUNT": -2880}, "PCOUNT = -2880"),
    ],
)
def test_sizes_that_are_negative_or_impossible_are_malformed(cards, words):
    with pytest.raises(InvalidFitsError, match=words):
        image_layout(declared_image(**cards), LIMITS)


def test_a_compressed_image_of_an_impossible_zbitpix_is_malformed():
    with pytest.raises(InvalidFitsError, match="ZBITPIX = 12"):
        image_layout(compressed_header(64, 48, zbitpix=12), LIMITS)


class CountingFile(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.longest = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = super().read(size)
        self.longest = max(self.longest, len(chunk))
        return chunk


def test_an_open_file_is_read_no_further_than_the_header_limit():
    file = CountingFile(endless_header(8 * 1024 * 1024))
    with pytest.raises(ImageLimitError):
        read_image_layout(file, limits=LIMITS)
    assert file.longest <= LIMITS.max_header_bytes
    good = synthetic.fits_bytes(np.zeros((48, 64), dtype=np.uint16), {})
    assert read_image_layout(io.BytesIO(good), limits=LIMITS).header["NAXIS2"] == 48


# ---- any bytes ---------------------------------------------------------------------------------

VALID = synthetic.fits_bytes(
    np.arange(48 * 64, dtype=np.uint16).reshape(48, 64),
    {"IMAGETYP": "DARK", "INSTRUME": "cam", "EXPTIME": 30.0},
)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(hostile=hostile_fits(VALID))
def test_every_hostile_file_is_refused_from_its_first_bytes(hostile):
    try:
        layout = image_layout(hostile.data[: LIMITS.max_header_bytes], LIMITS)
    except HeaderIncompleteError:
        assert len(hostile.data) < LIMITS.max_header_bytes  # the whole file: it ends there
    except InvalidFitsError:
        pass
    else:  # only a truncated file gets a layout: its image needs more than it has
        assert hostile.kind == "truncated data" and layout.needed > len(hostile.data)


_SIZE = st.one_of(
    st.integers(min_value=-3, max_value=5),
    st.integers(min_value=-(10**15), max_value=10**15),
)
_CARD = st.one_of(
    st.tuples(st.sampled_from(["NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4"]), _SIZE),
    st.tuples(st.sampled_from(["PCOUNT", "GCOUNT", "ZNAXIS", "ZNAXIS1", "ZNAXIS2"]), _SIZE),
    st.tuples(st.sampled_from(["BITPIX", "ZBITPIX"]), st.sampled_from([8, 16, -32, 3, 0])),
    st.tuples(st.sampled_from(["ZIMAGE", "EXTEND"]), st.sampled_from(["T", "F"])),
    st.tuples(st.just("XTENSION"), st.sampled_from(["'IMAGE   '", "'BINTABLE'", "'TABLE'"])),
)
_HDU = st.lists(_CARD, max_size=12).map(lambda cards: header_bytes(*cards))


@settings(max_examples=200, deadline=2000)
@given(
    first=st.lists(_CARD, max_size=10),
    more=st.lists(_HDU, max_size=4),
    tail=st.binary(max_size=3 * BLOCK),
)
def test_any_header_shaped_bytes_end_in_a_layout_or_a_clear_refusal(first, more, tail):
    """Never a hang, an overflow or another error (negative sizes pointing backwards,
    giant ones, missing keywords...)."""
    data = header_bytes(("SIMPLE", "T"), *first) + b"".join(more) + tail
    try:
        layout = image_layout(data, LIMITS)
    except InvalidFitsError:
        return
    assert layout.data_offset <= LIMITS.max_header_bytes
    assert layout.header["NAXIS"] <= 3


@settings(max_examples=100, deadline=2000)
@given(data=st.binary(max_size=4 * BLOCK))
def test_any_bytes_end_in_a_layout_or_a_clear_refusal(data):
    with pytest.raises(InvalidFitsError):
        image_layout(data, LIMITS)
