"""Header dialects (issue 15): the §2 fields read from headers as each capture program
writes them, masters made elsewhere recognised, and rejections that say what was looked for.

The headers are built here from the programs' documented habits (their keywords, how they
spell frame types and write values), not copied from anyone's files.
"""

from __future__ import annotations

import contextlib
import io

import msgspec
import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_core.dialects import READ_KEYWORDS
from calib_core.fitsheader import image_layout
from calib_core.headers import (
    MissingFieldsError,
    fields_from_header,
    master_card,
    names_a_master,
    parse_frame_type,
    resolve_metadata,
)
from calib_core.limits import OutOfRangeError
from tests.support.dialects import BIAS, DARK, DIALECTS, FLAT, LIGHT
from tests.support.hostile import header_bytes


def written(*cards: tuple[str, str], width: int = 64, height: int = 48):
    """The header of a 16-bit image with these cards, each value exactly as the program
    writes it (quotes and all), as registration reads it from the file's first bytes."""
    structure = [("SIMPLE", "T"), ("BITPIX", 16), ("NAXIS", 2)]
    structure += [("NAXIS1", width), ("NAXIS2", height)]
    return image_layout(header_bytes(*structure, *cards)).header


@pytest.mark.parametrize(
    ("cards", "expected"),
    [pytest.param(cards, expected, id=program) for program, cards, expected in DIALECTS],
)
def test_each_program_s_header_gives_its_fields(cards, expected):
    assert fields_from_header(written(*cards)) == {**expected, "width": 64, "height": 48}


@pytest.mark.parametrize(
    ("program", "cards"),
    [(program, cards) for program, cards, expected in DIALECTS if "frame_type" in expected],
)
def test_each_program_s_typed_frame_registers_from_its_header_alone(program, cards):
    metadata = resolve_metadata({}, fields_from_header(written(*cards)))
    assert (metadata.width, metadata.height) == (64, 48)


def test_a_frame_without_a_type_is_named_with_what_was_looked_for():
    dwarf = written(("EXP", "15."), ("GAIN", "110"), ("INSTRUME", "'DWARFII '"))
    with pytest.raises(MissingFieldsError) as refused:
        resolve_metadata({}, fields_from_header(dwarf))
    assert str(refused.value) == (
        "missing required fields: frame_type (none of IMAGETYP, FRAME, OBSTYPE in the header)"
    )
    assert resolve_metadata({"frame_type": "light"}, fields_from_header(dwarf)).exposure_s == 15


def test_a_card_that_cannot_be_read_is_named_in_the_rejection():
    maxim = written(("IMAGETYP", "'Tricolor Image'"), ("EXPTIME", "'n/a'"), ("INSTRUME", "'c'"))
    with pytest.raises(MissingFieldsError) as refused:
        resolve_metadata({}, fields_from_header(maxim))
    assert refused.value.fields == ["frame_type", "exposure_s"]
    assert str(refused.value) == (
        "missing required fields: frame_type (IMAGETYP = 'Tricolor Image' not understood;"
        " looked for IMAGETYP, FRAME, OBSTYPE), exposure_s (EXPTIME = 'n/a' not understood;"
        " looked for EXPTIME, EXPOSURE, EXP)"
    )


def test_a_later_keyword_is_read_when_an_earlier_one_says_nothing():
    header = written(("IMAGETYP", "'Tricolor Image'"), ("FRAME", "'Dark'"))
    assert fields_from_header(header)["frame_type"] == DARK
    header = written(
        ("EXPTIME", "'n/a'"), ("EXPOSURE", "30"), ("XBINNING", "0"), ("CCDSUM", "'3 3'")
    )
    assert (fields_from_header(header)["exposure_s"], fields_from_header(header)["binning"]) == (
        30.0,
        "3x3",
    )


@pytest.mark.parametrize(
    ("spelling", "kind"),
    [
        ("object", LIGHT),
        ("Light Frame", LIGHT),
        ("EXPOSE", LIGHT),
        ("zero", BIAS),
        ("Bias Frame", BIAS),
        ("dome flat", FLAT),
        ("sky flat", FLAT),
        ("SKYFLAT", FLAT),
        ("Flat Field", FLAT),
        ("Flat Dark", DARK),
        ("Dark Flat", DARK),
        ("DARKFLAT", DARK),
        ("Master Dark", DARK),
        ("MASTER BIAS", BIAS),
        ("masterflat", FLAT),
        ("master_flat", FLAT),
        ("comp", None),
        ("focus", None),
        ("Tricolor Image", None),
        ("master", None),
    ],
)
def test_frame_type_spellings(spelling, kind):
    assert parse_frame_type(spelling) == kind


# ---- masters made elsewhere -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cards", "card"),
    [
        ({"IMAGETYP": "BIAS", "STACKCNT": 10}, "STACKCNT = 10"),
        ({"IMAGETYP": "Dark", "NCOMBINE": 25}, "NCOMBINE = 25"),
        ({"IMAGETYP": "Dark", "NCOMBINE": "25"}, "NCOMBINE = '25'"),
        ({"IMAGETYP": "Dark Frame", "SNAPSHOT": 4}, "SNAPSHOT = 4"),
        ({"IMAGETYP": "Master Dark"}, "IMAGETYP = 'Master Dark'"),
        ({"IMAGETYP": "MASTER BIAS"}, "IMAGETYP = 'MASTER BIAS'"),
        ({"IMAGETYP": "masterflat"}, "IMAGETYP = 'masterflat'"),
        ({"FRAME": "Master Flat"}, "FRAME = 'Master Flat'"),
        ({"CALFRAME": "MasterFlat", "EXPTIME": 1.28}, "CALFRAME = 'MasterFlat'"),
    ],
)
def test_a_master_made_elsewhere_is_recognised_by_its_card(cards, card):
    assert master_card(cards) == card


@pytest.mark.parametrize(
    "cards",
    [
        {"IMAGETYP": "DARK"},
        {"IMAGETYP": "DARKFLAT"},
        {"IMAGETYP": "Light Frame", "SNAPSHOT": 1},
        {"IMAGETYP": "BIAS", "STACKCNT": 1},
        {"IMAGETYP": "BIAS", "NCOMBINE": 1},
        {"IMAGETYP": "BIAS", "NCOMBINE": "n/a"},
        {},
    ],
)
def test_an_individual_frame_is_no_master(cards):
    assert master_card(cards) is None


def test_a_master_s_frame_type_is_still_read_for_its_upload():
    header = written(("IMAGETYP", "'Master Dark'"), ("NCOMBINE", "30"), ("EXPTIME", "300."))
    assert fields_from_header(header)["frame_type"] == DARK
    assert names_a_master("Master Dark") and not names_a_master("Dark Frame")


# ---- no card makes a frame unreadable ---------------------------------------------------

_READ = sorted(READ_KEYWORDS - {"NAXIS1", "NAXIS2"})
_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=30),
    st.sampled_from(["'2*2'", "0x0", "(0 x 1)", "2 2", "60,0", "master", "2001-04-09", "nan"]),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_READ), _ANY_VALUE, max_size=12))
def test_no_card_value_makes_a_header_unreadable(cards):
    header = {"NAXIS1": 64, "NAXIS2": 48, **cards}
    fields = fields_from_header(header)
    master_card(header)
    # at worst a rejection naming the field, never a crash
    with contextlib.suppress(MissingFieldsError, OutOfRangeError, msgspec.ValidationError):
        resolve_metadata({}, fields)


def test_a_re_save_with_a_compressed_image_and_a_thumbnail_reads_the_image():
    """PixInsight and Siril re-saves: an empty primary HDU, the image tile-compressed in
    an extension, a small thumbnail after it."""
    image = fits.CompImageHDU(np.zeros((48, 64), dtype=np.uint16), compression_type="RICE_1")
    for keyword, value in [("IMAGETYP", "Flat"), ("EXPTIME", "2.0"), ("INSTRUME", "cam")]:
        image.header[keyword] = value
    thumbnail = fits.ImageHDU(np.zeros((6, 8), dtype=np.uint8), name="THUMBNAIL")
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), image, thumbnail]).writeto(buffer)

    fields = fields_from_header(image_layout(buffer.getvalue()).header)
    assert (fields["frame_type"], fields["exposure_s"], fields["camera_name"]) == (FLAT, 2.0, "cam")
    assert (fields["width"], fields["height"]) == (64, 48)
