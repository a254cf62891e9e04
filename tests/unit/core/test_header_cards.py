"""The registry's fast FITS header reader agrees with astropy, or steps aside."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_core.headers import fields_from_header, plain_image_header

END_CARD = b"END" + b" " * 77


def fits_file(cards: list[tuple[str, object]], shape=(4, 6)) -> bytes:
    hdu = fits.PrimaryHDU(np.zeros(shape, dtype=np.uint16)) if shape else fits.PrimaryHDU()
    for keyword, value in cards:
        hdu.header.append((keyword, value, "a comment / with a slash"), end=True)
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def astropy_cards(data: bytes) -> dict:
    header = fits.Header.fromstring(data[: data.index(END_CARD) + 80].decode("ascii"))
    found: dict = {}
    for card in header.cards:
        if (
            card.keyword
            and card.keyword not in ("COMMENT", "HISTORY", "")
            and card.keyword not in found
        ):
            found[card.keyword] = card.value
    return found


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
    assert plain_image_header(data) == astropy_cards(data)
    assert fields_from_header(plain_image_header(data)) == fields_from_header(
        fits.Header.fromstring(data[: data.index(END_CARD) + 80].decode("ascii"))
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'O''Brien '", "O'Brien"),
        ("''", ""),
        ("'  lead'", "  lead"),
        ("1.5D3", 1500.0),
        ("-2", -2),
        ("+7", 7),
        ("1.0E-2", 0.01),
        ("T", True),
        ("F", False),
        ("", None),
    ],
)
def test_card_values(text, value):
    card = f"{'KEY':8}= {text:<70}".encode()
    data = fits_file([])
    end = data.index(END_CARD)
    assert plain_image_header(data[:end] + card + data[end:])["KEY"] == value


def test_the_first_of_repeated_keywords_counts():
    data = fits_file([("FILTER", "L"), ("FILTER", "R")])
    assert plain_image_header(data)["FILTER"] == "L"


@pytest.mark.parametrize(
    "case",
    [
        "not fits",
        "no end yet",
        "three axes",
        "no image",
        "long string",
        "complex value",
        "unclosed string",
        "non ascii",
    ],
)
def test_anything_unusual_is_left_to_the_full_reader(case):
    data = fits_file(NINA)
    if case == "not fits":
        data = b"PK\x03\x04" + data[4:]
    elif case == "no end yet":
        data = data[: 80 * 10]
    elif case == "three axes":
        data = fits_file(NINA, shape=(2, 4, 6))
    elif case == "no image":
        data = fits_file([], shape=None)
    elif case == "long string":
        data = fits_file([("INSTRUME", "x" * 120)])
    elif case == "complex value":
        data = data.replace(b"GAIN    =                  100", b"GAIN    =               (1, 2)")
    elif case == "unclosed string":
        data = data.replace(b"'Ha      '", b"'Ha       ")
    else:
        data = data.replace(b"Ha      ", "Hä      ".encode("latin-1"))
    assert plain_image_header(data) is None


_printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
_values = st.one_of(
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda v: abs(v) < 1e300),
    _printable.map(str.rstrip),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([k for k, _ in NINA]), _values), max_size=40))
def test_agrees_with_astropy_on_any_values(cards):
    data = fits_file(cards)
    parsed = plain_image_header(data)
    if parsed is None:  # e.g. a string long enough for a CONTINUE card
        return
    expected = astropy_cards(data)
    assert parsed.keys() == expected.keys()
    for key, value in expected.items():
        assert parsed[key] == value and type(parsed[key]) is type(value), key
