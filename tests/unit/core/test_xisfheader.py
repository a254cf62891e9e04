"""XISF headers (issue 15): the §2 fields read from N.I.N.A.'s and PixInsight's XISF
files (``FITSKeyword`` elements and XISF properties), the layout of their data block, and
hostile files refused with a message naming what is wrong (SPEC §12)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_core.fitsheader import HeaderIncompleteError, InvalidFitsError
from calib_core.headers import fields_from_header, master_card
from calib_core.imagefile import image_layout, kind_of, read_image_layout
from calib_core.limits import ImageLimits
from calib_core.xisfheader import InvalidXisfError, XisfLayout, XisfLimitError, xisf_layout
from tests.support.xisf import NINA_KEYWORDS, NINA_PROPERTIES, XISF_DIALECTS, xisf_bytes

PIXELS = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)
LIMITS = ImageLimits(max_pixels=1_000_000, max_header_bytes=64 * 1024)


def nina(**options) -> bytes:
    return xisf_bytes(PIXELS, keywords=NINA_KEYWORDS, properties=NINA_PROPERTIES, **options)


@pytest.mark.parametrize(
    "keywords, properties, codec, shuffle, expected",
    [dialect[1:] for dialect in XISF_DIALECTS],
    ids=[dialect[0] for dialect in XISF_DIALECTS],
)
def test_fields_are_read_from_keywords_and_properties(
    keywords, properties, codec, shuffle, expected
):
    data = xisf_bytes(
        PIXELS, keywords=keywords, properties=properties, codec=codec, shuffle=shuffle
    )
    layout = image_layout(data, LIMITS)
    assert isinstance(layout, XisfLayout)
    assert fields_from_header(layout.header) == {**expected, "width": 64, "height": 48}
    assert (layout.codec, layout.shuffled, layout.needed) == (codec, shuffle, len(data))


def test_a_property_never_overrides_a_keyword_of_its_field():
    # SGP's EXPOSURE is read after EXPTIME: a property's EXPTIME must not come first
    data = xisf_bytes(
        PIXELS,
        keywords=[("IMAGETYP", "'LIGHT'", ""), ("EXPOSURE", "30", ""), ("XBINNING", "2", "")],
        properties=[
            ("Instrument:ExposureTime", "Float32", 31.0),
            ("Instrument:Camera:XBinning", "Int32", 1),
            ("Instrument:Camera:YBinning", "Int32", 1),
        ],
    )
    fields = fields_from_header(xisf_layout(data).header)
    assert (fields["exposure_s"], fields["binning"]) == (30.0, "2x2")


def test_odd_keywords_and_properties_never_make_a_frame_unreadable():
    data = xisf_bytes(
        PIXELS,
        keywords=[
            ("imagetyp", "'Dark'", "lower-case name"),
            ("BAD NAME", "1", ""),
            ("OBJECT", "'unclosed", ""),
            ("NAXIS2", "'not a number'", "a FITS storage keyword: XISF's geometry rules"),
            ("COMMENT", "'written by a test'", ""),
            ("SITENAME", "'Observatoire'", "comment \u00e0 accent"),
        ],
        properties=[
            ("Instrument:ExposureTime", "Float32", "sixty"),
            ("Instrument:Camera:Name", "String", "ZWO ASI2600MM Pro"),
        ],
    )
    header = xisf_layout(data).header
    assert header["IMAGETYP"] == "Dark" and header["OBJECT"] == "unclosed"
    assert header["NAXIS2"] == 48 and "BAD NAME" not in header and "EXPTIME" not in header
    assert ("COMMENT", "written by a test", "") in header.cards
    assert ("SITENAME", "Observatoire", "comment ? accent") in header.cards


def test_an_xisf_master_made_elsewhere_is_recognised():
    data = xisf_bytes(PIXELS, keywords=[("IMAGETYP", "'Master Dark'", ""), ("NCOMBINE", "20", "")])
    assert master_card(xisf_layout(data).header) == "NCOMBINE = 20"


def test_the_format_is_told_by_signature_not_name():
    assert kind_of(nina()) == "XISF" and kind_of(b"SIMPLE  =") == "FITS"
    assert isinstance(read_image_layout(io.BytesIO(nina(codec="zlib", shuffle=True))), XisfLayout)


def _replaced(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def _header(xml: str) -> bytes:
    return xisf_bytes(PIXELS, header=xml)


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE xisf [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    '<xisf version="1.0" xmlns="http://www.pixinsight.com/xisf">&c;</xisf>'
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE xisf [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    '<xisf version="1.0" xmlns="http://www.pixinsight.com/xisf">&e;</xisf>'
)
XISF_ROOT = '<xisf version="1.0" xmlns="http://www.pixinsight.com/xisf">{}</xisf>'


@pytest.mark.parametrize(
    "data, message",
    [
        (_replaced(nina(), b"XISF0100", b"XISF0200"), "not an XISF 1.0 file"),
        (_replaced(nina(), nina()[8:12], bytes(4)), "header length is 0"),
        (_header(BOMB), "XISF header refused"),
        (_header(EXTERNAL), "XISF header refused"),
        (_header("<xisf><Image"), "malformed XISF header (XML"),
        (_header("<fits/>"), "root element is 'fits'"),
        (_header(XISF_ROOT.format("<Metadata/>")), "no Image element"),
        (xisf_bytes(PIXELS, image_attributes={"geometry": "64:x:1"}), "malformed XISF image geo"),
        (xisf_bytes(PIXELS, image_attributes={"geometry": "64:48"}), "not a 2-D image"),
        (xisf_bytes(PIXELS, image_attributes={"geometry": "0:48:1"}), "not a 2-D image"),
        (
            xisf_bytes(PIXELS, image_attributes={"geometry": "32:32:3", "colorSpace": "RGB"}),
            "3 channels (colorSpace RGB)",
        ),
        (xisf_bytes(PIXELS, image_attributes={"sampleFormat": "Complex32"}), "'Complex32'"),
        (xisf_bytes(PIXELS, image_attributes={"byteOrder": "middle"}), "byteOrder 'middle'"),
        (
            xisf_bytes(PIXELS, image_attributes={"location": "url(https://x/a.xisb):0"}),
            "distributed XISF",
        ),
        (
            xisf_bytes(PIXELS, image_attributes={"location": "inline:base64"}),
            "only attached data blocks",
        ),
        (
            xisf_bytes(PIXELS, image_attributes={"location": "attachment:8:6144"}),
            "must follow the header",
        ),
        (
            xisf_bytes(PIXELS, image_attributes={"location": "attachment:4096:100"}),
            "its data block is 100 bytes",
        ),
        (
            xisf_bytes(PIXELS, codec="zlib", image_attributes={"compression": "lzma:6144"}),
            "codec 'lzma' is not read",
        ),
        (
            xisf_bytes(PIXELS, codec="zlib", image_attributes={"compression": "zlib:99"}),
            "samples take 6144 bytes",
        ),
        (
            xisf_bytes(PIXELS, codec="zlib", image_attributes={"compression": "zlib+sh:6144:4"}),
            "shuffled items must be the 2-byte samples",
        ),
        (
            xisf_bytes(PIXELS, codec="zlib", image_attributes={"subblocks": "10,6144"}),
            "sub-blocks are not read",
        ),
    ],
)
def test_hostile_files_are_refused_naming_what_is_wrong(data, message):
    with pytest.raises(InvalidXisfError) as refused:
        xisf_layout(data, LIMITS)
    assert message in str(refused.value)
    assert isinstance(refused.value, InvalidFitsError)  # every frame reader handles it


FLOATS = PIXELS.astype(np.float32) / 65535


@pytest.mark.parametrize("bounds", ["1:0", "0:0", "0", "a:b", "nan:1", "0:inf", "0:1:2"])
def test_a_float_image_with_malformed_bounds_is_refused(bounds):
    with pytest.raises(InvalidXisfError, match=f"malformed XISF image bounds '{bounds}'"):
        xisf_layout(xisf_bytes(FLOATS, image_attributes={"bounds": bounds}), LIMITS)


def test_only_a_float_image_has_bounds_to_read_from():
    assert xisf_layout(xisf_bytes(FLOATS, image_attributes={"bounds": "0:1"})).bounds == (0, 1)
    assert xisf_layout(xisf_bytes(FLOATS)).bounds is None  # XISF requires them: read as stored
    integers = xisf_bytes(PIXELS, image_attributes={"bounds": "0:1"})
    assert xisf_layout(integers).bounds is None


@pytest.mark.parametrize(
    "attributes, message",
    [
        ({"geometry": "100000:100000:1"}, "image too large: its geometry '100000:100000:1'"),
        ({"geometry": "64:48:1:1"}, "image has 4 axes"),
    ],
)
def test_absurd_geometry_is_refused_before_anything_is_allocated(attributes, message):
    with pytest.raises(XisfLimitError, match=message):
        xisf_layout(xisf_bytes(PIXELS, image_attributes=attributes), LIMITS)


def test_a_header_too_long_is_refused_from_the_first_16_bytes():
    preamble = b"XISF0100" + (LIMITS.max_header_bytes).to_bytes(4, "little") + bytes(4)
    with pytest.raises(XisfLimitError, match="header longer than 65536 bytes"):
        xisf_layout(preamble, LIMITS)


def test_a_short_prefix_asks_for_the_whole_header():
    data = nina()
    with pytest.raises(HeaderIncompleteError) as short:
        xisf_layout(data[:100], LIMITS)
    assert short.value.needed == 16 + int.from_bytes(data[8:12], "little")
    assert isinstance(xisf_layout(data[: short.value.needed], LIMITS), XisfLayout)


@pytest.mark.parametrize(
    "cut, message", [(10, "ends inside its XISF header"), (-10, "truncated: the image needs")]
)
def test_a_truncated_file_is_refused(cut, message):
    with pytest.raises(InvalidXisfError, match=message):
        read_image_layout(io.BytesIO(nina()[:cut]))


ATTRIBUTES = ["geometry", "sampleFormat", "byteOrder", "location", "compression", "subblocks"]


@settings(max_examples=300, deadline=None)
@given(
    attributes=st.dictionaries(st.sampled_from(ATTRIBUTES), st.text(max_size=30), max_size=3),
    keywords=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20), st.text(max_size=5))),
    properties=st.lists(
        st.tuples(
            st.sampled_from(["Instrument:ExposureTime", "Observation:Time:Start", "X"]),
            st.sampled_from(["Float32", "UInt8", "String", "TimePoint", "Vector"]),
            st.text(max_size=20),
        )
    ),
    codec=st.sampled_from([None, "zlib"]),
)
def test_no_header_content_escapes_as_anything_but_a_refusal(
    attributes, keywords, properties, codec
):
    """Whatever a header holds, it is read or refused as an invalid XISF file: never an
    error the registry would take for a failing dependency and retry."""
    data = xisf_bytes(
        PIXELS, keywords=keywords, properties=properties, codec=codec, image_attributes=attributes
    )
    with contextlib.suppress(InvalidFitsError):  # anything else fails the test
        fields_from_header(xisf_layout(data, LIMITS).header)


@settings(max_examples=300, deadline=None)
@given(header=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_no_header_bytes_escape_as_anything_but_a_refusal(header):
    data = b"XISF0100" + len(header).to_bytes(4, "little") + bytes(4) + header
    with contextlib.suppress(InvalidFitsError):
        xisf_layout(data, LIMITS)
