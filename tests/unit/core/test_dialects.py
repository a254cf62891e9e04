"""Header dialects (issue 15): the §2 fields read from headers as each capture program
writes them, masters made elsewhere recognised, and rejections that say what was looked for.

The headers are built here from the programs' documented habits (their keywords, how they
spell frame types and write values), not copied from anyone's files.
"""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime

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
from calib_core.models import FrameType
from tests.support.hostile import header_bytes

LIGHT, DARK, FLAT, BIAS = FrameType.LIGHT, FrameType.DARK, FrameType.FLAT, FrameType.BIAS


def written(*cards: tuple[str, str], width: int = 64, height: int = 48):
    """The header of a 16-bit image with these cards, each value exactly as the program
    writes it (quotes and all), as registration reads it from the file's first bytes."""
    structure = [("SIMPLE", "T"), ("BITPIX", 16), ("NAXIS", 2)]
    structure += [("NAXIS1", width), ("NAXIS2", height)]
    return image_layout(header_bytes(*structure, *cards)).header


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# program -> the cards it writes -> the §2 fields read (besides width 64 and height 48)
DIALECTS = [
    (
        "N.I.N.A. 3.x",
        [
            ("IMAGETYP", "'DARK'"),
            ("EXPOSURE", "60.0"),
            ("EXPTIME", "60.0"),
            ("DATE-OBS", "'2024-05-01T22:15:30.123'"),
            ("XBINNING", "1"),
            ("YBINNING", "1"),
            ("GAIN", "100"),
            ("OFFSET", "50"),
            ("INSTRUME", "'ZWO ASI2600MM Pro'"),
            ("SET-TEMP", "-10.0"),
            ("CCD-TEMP", "-9.8"),
            ("READOUTM", "'High Gain'"),
            ("ROTATOR", "181.25"),
            ("ROTATANG", "181.25"),
        ],
        {
            "frame_type": DARK,
            "exposure_s": 60.0,
            "captured_at": at("2024-05-01T22:15:30.123"),
            "binning": "1x1",
            "gain": 100.0,
            "offset": 50.0,
            "camera_name": "ZWO ASI2600MM Pro",
            "set_temperature_c": -10.0,
            "temperature_c": -9.8,
            "readout_mode": "High Gain",
            "rotation_deg": 181.25,
        },
    ),
    (
        "N.I.N.A. 1.x (dates unquoted)",
        [
            ("IMAGETYP", "'LIGHT'"),
            ("EXPOSURE", "30.0"),
            ("EXPTIME", "30.0"),
            ("DATE-LOC", "2021-03-02T21:19:00.455"),
            ("DATE-OBS", "2021-03-02T20:19:00.455"),
            ("XBINNING", "1"),
            ("YBINNING", "1"),
            ("GAIN", "120"),
            ("OFFSET", "30"),
            ("INSTRUME", "'ZWO ASI294MC Pro'"),
            ("SET-TEMP", "-10.0"),
            ("CCD-TEMP", "-10.0"),
            ("FILTER", "'L'"),
        ],
        {
            "frame_type": LIGHT,
            "exposure_s": 30.0,
            "captured_at": at("2021-03-02T20:19:00.455"),
            "binning": "1x1",
            "gain": 120.0,
            "offset": 30.0,
            "camera_name": "ZWO ASI294MC Pro",
            "set_temperature_c": -10.0,
            "temperature_c": -10.0,
            "filter": "L",
        },
    ),
    (
        "N.I.N.A. 2.x dark flat",
        [
            ("IMAGETYP", "'DARKFLAT'"),
            ("EXPTIME", "2.5"),
            ("INSTRUME", "'QHY268M'"),
            ("GAIN", "56"),
        ],
        {"frame_type": DARK, "exposure_s": 2.5, "camera_name": "QHY268M", "gain": 56.0},
    ),
    (
        "SGP",
        [
            ("DATE-OBS", "'2020-05-30T00:22:49.0968820'"),
            ("IMAGETYP", "'LIGHT   '"),
            ("CREATOR", "'Sequence Generator Pro v3.1.0.479'"),
            ("INSTRUME", "'ZWO ASI294MC Pro'"),
            ("FILTER", "'HaOIII  '"),
            ("EXPOSURE", "30"),
            ("CCD-TEMP", "-17.5"),
            ("SET-TEMP", "-18"),
            ("XBINNING", "1"),
            ("CCDXBIN", "1"),
            ("YBINNING", "1"),
            ("CCDYBIN", "1"),
            ("GAIN", "120"),
            ("EGAIN", "3.99000000953674"),
            ("OFFSET", "30"),
        ],
        {
            "captured_at": at("2020-05-30T00:22:49.096882"),
            "frame_type": LIGHT,
            "camera_name": "ZWO ASI294MC Pro",
            "filter": "HaOIII",
            "exposure_s": 30.0,
            "temperature_c": -17.5,
            "set_temperature_c": -18.0,
            "binning": "1x1",
            "gain": 120.0,
            "offset": 30.0,
        },
    ),
    (
        "SGP with a Canon DSLR (ISO, TEMPERAT, CCDXBIN only)",
        [
            ("IMAGETYP", "'DARK'"),
            ("INSTRUME", "'Canon EOS 6D'"),
            ("EXPOSURE", "120"),
            ("CCDXBIN", "1"),
            ("CCDYBIN", "1"),
            ("ISO", "800"),
            ("TEMPERAT", "12.5"),
        ],
        {
            "frame_type": DARK,
            "camera_name": "Canon EOS 6D",
            "exposure_s": 120.0,
            "binning": "1x1",
            "gain": 800.0,
            "temperature_c": 12.5,
        },
    ),
    (
        "MaxIm DL 5-6",
        [
            ("DATE-OBS", "'2018-07-04T14:03:03'"),
            ("EXPTIME", "3.00000000000E+000"),
            ("EXPOSURE", "3.00000000000E+000"),
            ("SET-TEMP", "-35.000000000000000"),
            ("CCD-TEMP", "-34.993802250000002"),
            ("XBINNING", "2"),
            ("YBINNING", "2"),
            ("READOUTM", "'Monochrome'"),
            ("FILTER", "'SII     '"),
            ("IMAGETYP", "'Flat Field'"),
            ("SWCREATE", "'MaxIm DL Version 5.24'"),
            ("INSTRUME", "'Apogee USB/Net'"),
            ("EGAIN", "1.4"),
        ],
        {
            "captured_at": at("2018-07-04T14:03:03"),
            "exposure_s": 3.0,
            "set_temperature_c": -35.0,
            "temperature_c": -34.993802250000002,
            "binning": "2x2",
            "readout_mode": "Monochrome",
            "filter": "SII",
            "frame_type": FLAT,
            "camera_name": "Apogee USB/Net",
        },
    ),
    (
        "MaxIm DL 4 (date and time apart)",
        [
            ("DATE-OBS", "'2009-11-21'"),
            ("TIME-OBS", "'03:12:45'"),
            ("EXPTIME", "300."),
            ("CCD-TEMP", "-25.1"),
            ("XBINNING", "1"),
            ("YBINNING", "1"),
            ("IMAGETYP", "'Dark Frame'"),
            ("INSTRUME", "'SBIG ST-8XME'"),
        ],
        {
            "captured_at": at("2009-11-21T03:12:45"),
            "exposure_s": 300.0,
            "temperature_c": -25.1,
            "binning": "1x1",
            "frame_type": DARK,
            "camera_name": "SBIG ST-8XME",
        },
    ),
    (
        "APT",
        [
            ("INSTRUME", "'ZWO ASI294MC Pro'"),
            ("DATE-OBS", "'2018-09-17T21:04:46'"),
            ("EXPTIME", "240."),
            ("XBINNING", "1"),
            ("YBINNING", "1"),
            ("EGAIN", "1.00224268436432"),
            ("SWCREATE", "'Astro Photography Tool - APT v.3.54.1'"),
            ("SNAPSHOT", "1"),
            ("SET-TEMP", "-15."),
            ("IMAGETYP", "'Light Frame'"),
            ("GAIN", "120"),
        ],
        {
            "camera_name": "ZWO ASI294MC Pro",
            "captured_at": at("2018-09-17T21:04:46"),
            "exposure_s": 240.0,
            "binning": "1x1",
            "set_temperature_c": -15.0,
            "frame_type": LIGHT,
            "gain": 120.0,
        },
    ),
    (
        "SharpCap (no frame type)",
        [
            ("SWCREATE", "'SharpCap'"),
            ("CCD-TEMP", "12.7"),
            ("YBINNING", "1"),
            ("XBINNING", "1"),
            ("EXPTIME", "2"),
            ("DATE-OBS", "'2019-04-29T20:25:29.8219583'"),
            ("INSTRUME", "'ZWO ASI290MM Mini'"),
        ],
        {
            "temperature_c": 12.7,
            "binning": "1x1",
            "exposure_s": 2.0,
            "captured_at": at("2019-04-29T20:25:29.821958"),
            "camera_name": "ZWO ASI290MM Mini",
        },
    ),
    (
        "ASIAIR",
        [
            ("IMAGETYP", "'Bias'"),
            ("EXPOSURE", "0.000032"),
            ("EXPTIME", "0.000032"),
            ("DATE-OBS", "'2023-02-11T19:02:11.211'"),
            ("XBINNING", "1"),
            ("YBINNING", "1"),
            ("GAIN", "100"),
            ("CCD-TEMP", "-10.1"),
            ("INSTRUME", "'ZWO ASI2600MC Pro'"),
        ],
        {
            "frame_type": BIAS,
            "exposure_s": 0.000032,
            "captured_at": at("2023-02-11T19:02:11.211"),
            "binning": "1x1",
            "gain": 100.0,
            "temperature_c": -10.1,
            "camera_name": "ZWO ASI2600MC Pro",
        },
    ),
    (
        "KStars/Ekos through INDI",
        [
            ("INSTRUME", "'ZWO CCD ASI294MM Pro'"),
            ("EXPTIME", "1.200000000000E+02"),
            ("CCD-TEMP", "-1.00E+01"),
            ("XBINNING", "2"),
            ("YBINNING", "2"),
            ("GAIN", "1.20E+02"),
            ("OFFSET", "3.00E+01"),
            ("FILTER", "'Ha      '"),
            ("IMAGETYP", "'Light Frame'"),
            ("DATE-OBS", "'2023-10-12T21:44:09.731'"),
        ],
        {
            "camera_name": "ZWO CCD ASI294MM Pro",
            "exposure_s": 120.0,
            "temperature_c": -10.0,
            "binning": "2x2",
            "gain": 120.0,
            "offset": 30.0,
            "filter": "Ha",
            "frame_type": LIGHT,
            "captured_at": at("2023-10-12T21:44:09.731"),
        },
    ),
    (
        "KStars/Ekos through INDI, older (FRAME, binning 2.0)",
        [
            ("INSTRUME", "'SBIG ST-8300'"),
            ("EXPTIME", "3.000000000000E+02"),
            ("CCD-TEMP", "-2.00E+01"),
            ("XBINNING", "2.0"),
            ("YBINNING", "2.0"),
            ("FRAME", "'Light'"),
            ("FILTER", "'L'"),
            ("DATE-OBS", "'2016-08-02T23:10:05'"),
        ],
        {
            "camera_name": "SBIG ST-8300",
            "exposure_s": 300.0,
            "temperature_c": -20.0,
            "binning": "2x2",
            "frame_type": LIGHT,
            "filter": "L",
            "captured_at": at("2016-08-02T23:10:05"),
        },
    ),
    (
        "older INDI driver (BINNING as text)",
        [
            ("CCD-TEMP", "-15.0"),
            ("EXPTIME", "1.5"),
            ("BINNING", "'(1 x 1)'"),
            ("FRAME", "'Flat Field'"),
            ("INSTRUME", "'QSI 683ws'"),
        ],
        {
            "temperature_c": -15.0,
            "exposure_s": 1.5,
            "binning": "1x1",
            "frame_type": FLAT,
            "camera_name": "QSI 683ws",
        },
    ),
    (
        "Seestar",
        [
            ("IMAGETYP", "'Light'"),
            ("DATE-OBS", "'2024-03-09T20:05:31.512'"),
            ("EXP", "10.0"),
            ("GAIN", "80"),
            ("DET-TEMP", "31.5"),
            ("XBINNING", "1"),
            ("YBINNING", "1"),
            ("FILTER", "'IRCUT'"),
            ("INSTRUME", "'Seestar S50'"),
        ],
        {
            "frame_type": LIGHT,
            "captured_at": at("2024-03-09T20:05:31.512"),
            "exposure_s": 10.0,
            "gain": 80.0,
            "temperature_c": 31.5,
            "binning": "1x1",
            "filter": "IRCUT",
            "camera_name": "Seestar S50",
        },
    ),
    (
        "DWARF II (no frame type, binning '2*2')",
        [
            ("DATE-OBS", "'2023-06-10T21:38:19.442'"),
            ("EXP", "15."),
            ("GAIN", "110"),
            ("BINNING", "'2*2     '"),
            ("INSTRUME", "'DWARFII '"),
        ],
        {
            "captured_at": at("2023-06-10T21:38:19.442"),
            "exposure_s": 15.0,
            "gain": 110.0,
            "binning": "2x2",
            "camera_name": "DWARFII",
        },
    ),
    (
        "DWARF 3",
        [
            ("DATE-OBS", "'2025-01-04T22:41:07.018'"),
            ("EXP", "60."),
            ("GAIN", "60"),
            ("DET-TEMP", "38.2"),
            ("INSTRUME", "'DWARFIII'"),
        ],
        {
            "captured_at": at("2025-01-04T22:41:07.018"),
            "exposure_s": 60.0,
            "gain": 60.0,
            "temperature_c": 38.2,
            "camera_name": "DWARFIII",
        },
    ),
    (
        "PixInsight re-save (every value quoted)",
        [
            ("IMAGETYP", "'Dark'"),
            ("EXPTIME", "'60.0'"),
            ("GAIN", "'100'"),
            ("OFFSET", "'50'"),
            ("XBINNING", "'2'"),
            ("YBINNING", "'2'"),
            ("CCD-TEMP", "'-10.1'"),
            ("SET-TEMP", "'-10'"),
            ("INSTRUME", "'ZWO ASI6200MM Pro'"),
            ("DATE-OBS", "'2024-01-15T23:59:58.5'"),
        ],
        {
            "frame_type": DARK,
            "exposure_s": 60.0,
            "gain": 100.0,
            "offset": 50.0,
            "binning": "2x2",
            "temperature_c": -10.1,
            "set_temperature_c": -10.0,
            "camera_name": "ZWO ASI6200MM Pro",
            "captured_at": at("2024-01-15T23:59:58.5"),
        },
    ),
    (
        "Siril re-save (quoted, decimal commas)",
        [
            ("IMAGETYP", "'Flat'"),
            ("EXPTIME", "'2,5'"),
            ("CCD-TEMP", "'-9,8'"),
            ("GAIN", "'120'"),
            ("XBINNING", "'1.0'"),
            ("FILTER", "'Ha'"),
            ("INSTRUME", "'ZWO ASI1600MM Pro'"),
        ],
        {
            "frame_type": FLAT,
            "exposure_s": 2.5,
            "temperature_c": -9.8,
            "gain": 120.0,
            "binning": "1x1",
            "filter": "Ha",
            "camera_name": "ZWO ASI1600MM Pro",
        },
    ),
    (
        "a decimal-comma locale, unquoted",
        [
            ("IMAGETYP", "'DARK'"),
            ("EXPTIME", "60,0"),
            ("CCD-TEMP", "-9,8"),
            ("INSTRUME", "'Atik 460EX'"),
        ],
        {
            "frame_type": DARK,
            "exposure_s": 60.0,
            "temperature_c": -9.8,
            "camera_name": "Atik 460EX",
        },
    ),
    (
        "IRAF object (CCDSUM, date and UT apart)",
        [
            ("IMAGETYP", "'object  '"),
            ("EXPTIME", "120."),
            ("CCDSUM", "'2 2     '"),
            ("FILTER", "'V       '"),
            ("INSTRUME", "'kpno 0.9m ccd'"),
            ("DATE-OBS", "'2001-04-09'"),
            ("UT", "'21:21:23'"),
        ],
        {
            "frame_type": LIGHT,
            "exposure_s": 120.0,
            "binning": "2x2",
            "filter": "V",
            "camera_name": "kpno 0.9m ccd",
            "captured_at": at("2001-04-09T21:21:23"),
        },
    ),
    (
        "IRAF zero",
        [("IMAGETYP", "'zero'"), ("EXPTIME", "0."), ("INSTRUME", "'ccd'")],
        {"frame_type": BIAS, "exposure_s": 0.0, "camera_name": "ccd"},
    ),
    (
        "IRAF dome flat",
        [("IMAGETYP", "'dome flat'"), ("EXPTIME", "5."), ("INSTRUME", "'ccd'")],
        {"frame_type": FLAT, "exposure_s": 5.0, "camera_name": "ccd"},
    ),
    (
        "IRAF sky flat",
        [("IMAGETYP", "'sky flat'"), ("EXPTIME", "2."), ("INSTRUME", "'ccd'")],
        {"frame_type": FLAT, "exposure_s": 2.0, "camera_name": "ccd"},
    ),
    (
        "NOAO/LCO observation type",
        [("OBSTYPE", "'SKYFLAT'"), ("EXPTIME", "7.5"), ("INSTRUME", "'fa03'")],
        {"frame_type": FLAT, "exposure_s": 7.5, "camera_name": "fa03"},
    ),
]


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
