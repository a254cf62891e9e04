"""The FITS header reader agrees with astropy card by card, and names what it cannot read."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_core.fitsheader import (
    BLOCK,
    Card,
    Header,
    HeaderIncompleteError,
    InvalidFitsError,
    image_layout,
    is_structural,
    read_image_layout,
)
from calib_core.headers import fields_from_header

END_CARD = b"END" + b" " * 77


def fits_file(cards: list[tuple[str, object]], shape=(4, 6)) -> bytes:
    hdu = fits.PrimaryHDU(np.zeros(shape, dtype=np.uint16)) if shape else fits.PrimaryHDU()
    for keyword, value in cards:
        hdu.header.append((keyword, value, "a comment / with a slash"), end=True)
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def astropy_header(data: bytes) -> fits.Header:
    return fits.Header.fromstring(data[: data.index(END_CARD) + 80].decode("ascii"))


def astropy_cards(data: bytes) -> dict:
    found: dict = {}
    for card in astropy_header(data).cards:
        if card.keyword not in ("COMMENT", "HISTORY", "") and card.keyword not in found:
            found[card.keyword] = card.value
    return found


def header_of(data: bytes) -> Header:
    return image_layout(data).header


NINA = [
    ("IMAGETYP", "DARK"),
    ("EXPOSURE", 60.0),
    ("EXPTIME", 60.0),
    ("DATE-OBS", "2024-05-01T22:15:30.123"),
    ("XBINNING", 1),
    ("YBINNING", 1),
    ("GAIN", 100),
    ("OFFSET", 50),
    ("INSTRUME", "ZWO ASI2600MM Pro"),
    ("CCD-TEMP", -9.8),
    ("SET-TEMP", -10.0),
    ("READOUTM", "High Gain Mode"),
    ("FILTER", "Ha"),
    ("ROTATANG", 181.25),
    ("SIMPLE2", True),
    ("FLAG", False),
]


def test_a_nina_header_reads_like_astropy():
    data = fits_file(NINA)
    assert dict(header_of(data)) == astropy_cards(data)
    assert fields_from_header(header_of(data)) == fields_from_header(astropy_header(data))


def test_cards_keep_order_comments_and_commentary_like_astropy():
    data = fits_file([*NINA, ("HISTORY", "stacked by hand"), ("COMMENT", "a note")])
    expected = [(c.keyword, c.value, c.comment) for c in astropy_header(data).cards]
    assert [tuple(card) for card in header_of(data).cards] == expected
    assert "HISTORY" not in header_of(data) and "COMMENT" not in header_of(data)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'O''Brien '", "O'Brien"),
        ("'Barnard's Loop'", "Barnard's Loop"),
        ("''", ""),
        ("'  lead'", "  lead"),
        ("1.5D3", 1500.0),
        ("-2", -2),
        ("+7", 7),
        ("1.0E-2", 0.01),
        ("1E5", 100000.0),
        ("T", True),
        ("F", False),
        ("(1, -2.5)", complex(1, -2.5)),
        ("", None),
        ("/ only a comment", None),
    ],
)
def test_card_values(text, value):
    card = f"{'KEY':8}= {text:<70}".encode()
    data = fits_file([])
    end = data.index(END_CARD)
    assert header_of(data[:end] + card + data[end:])["KEY"] == value


def test_the_first_of_repeated_keywords_counts():
    data = fits_file([("FILTER", "L"), ("FILTER", "R")])
    assert header_of(data)["FILTER"] == "L"


def test_long_strings_and_hierarch_keywords_read_like_astropy():
    data = fits_file([("INSTRUME", "O'Brien " * 30), ("HIERARCH ESO DET CHIP", 5)])
    assert b"CONTINUE" in data and b"HIERARCH" in data
    assert dict(header_of(data)) == astropy_cards(data)


def test_a_card_without_a_value_indicator_is_commentary_and_left_out():
    data = fits_file([])
    end = data.index(END_CARD)
    card = f"{'NOTE':8}  just some text".ljust(80).encode()
    header = header_of(data[:end] + card + data[end:])
    assert "NOTE" not in header and all(c.keyword != "NOTE" for c in header.cards)


@pytest.mark.parametrize(
    ("case", "error", "words"),
    [
        ("not fits", InvalidFitsError, "not a FITS file"),
        ("no end yet", HeaderIncompleteError, "incomplete"),
        ("three axes", InvalidFitsError, "not a 2-D image"),
        ("no image", HeaderIncompleteError, "incomplete"),
        ("unparsable structure", InvalidFitsError, "unparsable value of NAXIS1"),
        ("unclosed string", InvalidFitsError, "unparsable value of FILTER"),
        ("non ascii", InvalidFitsError, "malformed FITS header"),
    ],
)
def test_what_is_not_a_readable_image_header_says_why(case, error, words):
    data = fits_file(NINA)
    if case == "not fits":
        data = b"PK\x03\x04" + data[4:]
    elif case == "no end yet":
        data = data[: 80 * 10]
    elif case == "three axes":
        data = fits_file(NINA, shape=(2, 4, 6))
    elif case == "no image":
        data = fits_file([], shape=None)
    elif case == "unparsable structure":
        data = data.replace(b"NAXIS1  =                    6", b"NAXIS1  =             6 pixels")
    elif case == "unclosed string":
        data = data.replace(b"'Ha      '", b"'Ha       ")
    else:
        data = data.replace(b"Ha      ", "Hä      ".encode("latin-1"))
    with pytest.raises(error, match=words):
        image_layout(data)


def test_an_incomplete_header_names_the_bytes_it_needs():
    data = fits_file([("HISTORY", f"step {i}") for i in range(60)])  # two header blocks
    with pytest.raises(HeaderIncompleteError) as caught:
        image_layout(data[: BLOCK + 80])
    assert (caught.value.needed, caught.value.offset) == (2 * BLOCK, 0)
    assert image_layout(data[: 2 * BLOCK]).data_offset == 2 * BLOCK


def test_structural_keywords_are_the_storage_not_the_image():
    storage = ["SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS3", "EXTEND", "PCOUNT"]
    storage += ["GCOUNT", "BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM", "EXTNAME", "END"]
    storage += ["ZIMAGE", "ZBITPIX", "ZNAXIS2", "ZTILE1", "TFORM1", "TTYPE1", "TFIELDS"]
    assert all(is_structural(keyword) for keyword in storage)
    image = ["IMAGETYP", "EXPTIME", "ZEROPT", "FILTER", "NAXISX", "COMMENT", "HISTORY"]
    assert not any(is_structural(keyword) for keyword in image)


def test_a_header_is_a_mapping_of_first_values_and_its_cards_are_tuples():
    header = Header([Card("A", 1), Card("COMMENT", "x"), Card("A", 2), Card("B", "b", "why")])
    assert dict(header) == {"A": 1, "B": "b"} and len(header) == 2
    assert header.cards[3] == ("B", "b", "why")


@pytest.mark.parametrize(
    ("cut", "words"),
    [
        (lambda data, needed: data[:2000], "ends inside a FITS header"),
        (lambda data, needed: data[: needed - 1], "truncated: the image needs"),
        (lambda data, needed: fits_file([], shape=None), "no 2-D image before the end"),
    ],
)
def test_a_file_is_read_a_growing_prefix_at_a_time_and_must_hold_its_image(cut, words):
    data = fits_file([("HISTORY", f"step {i}") for i in range(200)], shape=(300, 400))
    needed = image_layout(data).needed
    layout = read_image_layout(io.BytesIO(data), first_read=BLOCK)
    assert (layout.needed, layout.header["NAXIS1"]) == (needed, 400)
    with pytest.raises(InvalidFitsError, match=words):
        read_image_layout(io.BytesIO(cut(data, needed)), first_read=BLOCK)


_printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=160)
_values = st.one_of(
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda v: abs(v) < 1e300),
    st.complex_numbers(max_magnitude=1e12, allow_nan=False, allow_infinity=False),
    _printable.map(str.rstrip),
)


@pytest.mark.filterwarnings("ignore:Card is too long")  # astropy cuts long comments
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([k for k, _ in NINA]), _values), max_size=40))
def test_agrees_with_astropy_on_any_values(cards):
    data = fits_file(cards)
    parsed = header_of(data)
    expected = astropy_cards(data)
    assert parsed.keys() == expected.keys()
    for key, value in expected.items():
        assert parsed[key] == value and type(parsed[key]) is type(value), key
    comments = [c.comment for c in astropy_header(data).cards]
    assert [card.comment for card in parsed.cards] == comments


def test_free_text_a_capture_program_left_unquoted_is_read_as_that_text():
    """N.I.N.A. 1.9 writes its dates unquoted; astropy refuses the card (VerifyError), and
    the frame used to be retried for ever. The text is read; a number that is not one
    (``GAIN = 100 units``) is then no gain at all."""
    data = fits_file(NINA)
    data = data.replace(
        b"DATE-OBS= '2024-05-01T22:15:30.123'", b"DATE-OBS= 2024-05-01T22:15:30.123  "
    )
    data = data.replace(b"GAIN    =                  100", b"GAIN    =            100 units")
    assert b"DATE-OBS= 2024-05-01T" in data and b"100 units" in data
    header = header_of(data)
    assert header["DATE-OBS"] == "2024-05-01T22:15:30.123"
    assert header["GAIN"] == "100 units"
    fields = fields_from_header(header)
    assert fields["captured_at"].isoformat().startswith("2024-05-01T22:15:30.123")
    assert "gain" not in fields
