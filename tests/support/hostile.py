"""Hostile inputs for the limit tests (SPEC §12): FITS files whose first bytes declare too
much or are malformed, numbers no camera produces, and hypothesis strategies over them.
Every file here is small however much it declares (except :func:`endless_header`, as
long as asked)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from calib_core.fitsheader import image_layout
from calib_core.limits import DEFAULT_MAX_IMAGE_PIXELS

BLOCK = 2880


def card(keyword: str, value: object) -> str:
    """One header card, ``value`` written as given (quote strings yourself)."""
    return f"{keyword:<8}= {value!s:>20}".ljust(80)


def header_bytes(*cards: tuple[str, object]) -> bytes:
    """A header of these cards and END, padded to its blocks."""
    text = "".join(card(keyword, value) for keyword, value in cards) + "END".ljust(80)
    return text.encode("ascii").ljust(-(-len(text) // BLOCK) * BLOCK, b" ")


def declared_image(**cards: object) -> bytes:
    """A dark's header declaring an image (16-bit 64 x 48 unless ``cards`` say otherwise),
    without its data."""
    values: dict[str, object] = {"SIMPLE": "T", "BITPIX": 16, "NAXIS": 2}
    values |= {"NAXIS1": 64, "NAXIS2": 48}
    values |= {key: value for key, value in cards.items() if key.startswith(("NAXIS", "BITPIX"))}
    values |= {"IMAGETYP": "'DARK'", "INSTRUME": "'cam'", "EXPTIME": 30.0}
    values |= {key: value for key, value in cards.items() if key not in values}
    return header_bytes(*values.items())


def compressed_header(width: int, height: int, zbitpix: int = 16) -> bytes:
    """A tile-compressed dark declaring ``width`` x ``height`` pixels (its heap left out)."""
    primary = header_bytes(("SIMPLE", "T"), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", "T"))
    table = header_bytes(
        ("XTENSION", "'BINTABLE'"),
        ("BITPIX", 8),
        ("NAXIS", 2),
        ("NAXIS1", 8),
        ("NAXIS2", height),
        ("PCOUNT", 0),
        ("GCOUNT", 1),
        ("TFIELDS", 1),
        ("TTYPE1", "'COMPRESSED_DATA'"),
        ("TFORM1", "'1PB(0)'"),
        ("ZIMAGE", "T"),
        ("ZBITPIX", zbitpix),
        ("ZNAXIS", 2),
        ("ZNAXIS1", width),
        ("ZNAXIS2", height),
        ("ZCMPTYPE", "'RICE_1'"),
        ("IMAGETYP", "'DARK'"),
        ("INSTRUME", "'cam'"),
        ("EXPTIME", 30.0),
    )
    return primary + table


def endless_header(size: int) -> bytes:
    """``size`` bytes (rounded down to whole cards) of a header that never ends."""
    return card("SIMPLE", "T").encode() + b"COMMENT".ljust(80) * (size // 80 - 1)


def with_card(data: bytes, keyword: str, value: object) -> bytes:
    """``data`` with its ``keyword`` card's value replaced (written as given)."""
    at = data.index(keyword.ljust(8).encode() + b"=")
    return data[:at] + card(keyword, value).encode() + data[at + 80 :]


def header_end(data: bytes) -> int:
    """Where the first header's END card ends."""
    at = 0
    while data[at : at + 8] != b"END     ":
        at += 80
    return at + 80


@dataclass(frozen=True)
class Hostile:
    """A malformed or oversized FITS file, what kind it is, and words its rejection
    (or refusal) holds."""

    kind: str
    data: bytes
    words: str

    def __repr__(self) -> str:  # hypothesis prints failing examples
        return f"Hostile({self.kind!r}, {len(self.data)} bytes, {self.words!r})"


def hostile_fits(valid: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> st.SearchStrategy:
    """Files no registry should register, each with the words of its rejection: ``valid``
    (a good frame) truncated or made non-ASCII, headers without END, giant NAXISn or
    ZNAXISn, wrong BITPIX, images of 4 axes or more."""
    end = header_end(valid)
    side = int(max_pixels**0.5) + 1
    giant = st.integers(min_value=side, max_value=10**12)
    return st.one_of(
        st.integers(min_value=1, max_value=end - 1).map(
            lambda cut: Hostile("truncated header", valid[:cut], "ends inside its header")
        ),
        st.integers(min_value=end, max_value=image_layout(valid).needed - 1).map(
            lambda cut: Hostile("truncated data", valid[:cut], "truncated")
        ),
        st.integers(min_value=BLOCK, max_value=200 * BLOCK).map(
            lambda size: Hostile("no END", endless_header(size), "ends inside its header")
        ),
        st.tuples(giant, giant).map(
            lambda wh: Hostile(
                "giant NAXIS", declared_image(NAXIS1=wh[0], NAXIS2=wh[1]), "image too large"
            )
        ),
        st.tuples(giant, giant).map(
            lambda wh: Hostile(
                "giant ZNAXIS", compressed_header(*wh), "(ZNAXIS1 x ZNAXIS2), more than the limit"
            )
        ),
        st.integers(min_value=-128, max_value=128)
        .filter(lambda bitpix: bitpix not in (8, 16, 32, 64, -32, -64))
        .map(lambda bitpix: Hostile("wrong BITPIX", declared_image(BITPIX=bitpix), "BITPIX")),
        st.tuples(
            st.integers(min_value=0, max_value=end - 81),
            st.integers(min_value=0x80, max_value=0xFF),
        ).map(
            lambda at: Hostile(
                "non-ASCII header",
                valid[: at[0]] + bytes([at[1]]) + valid[at[0] + 1 :],
                "not a valid FITS image",
            )
        ),
        st.integers(min_value=4, max_value=999).map(
            lambda axes: Hostile(
                "too many axes",
                declared_image(NAXIS=axes, **{f"NAXIS{n}": 1 for n in range(3, axes + 1)}),
                f"image has {axes} axes",
            )
        ),
    )


#: Numbers no camera produces, as JSON would carry them (NaN and Infinity are not JSON).
HOSTILE_NUMBERS = [
    "18446744073709551615",
    "1" + "0" * 40,
    "-1000",
    "1e999",
    "-1e999",
    "1e308",
    "NaN",
    "Infinity",
    "-Infinity",
]
#: The numeric fields of a ``frame.registered`` body or a form.
NUMERIC_FIELDS = [
    "width",
    "height",
    "exposure_s",
    "temperature_c",
    "set_temperature_c",
    "gain",
    "offset",
]


def hostile_numbers() -> st.SearchStrategy:
    """(field, number as text): every one out of its field's range, not finite, or (a
    float for an integer field) not even of the field's type."""
    return st.tuples(st.sampled_from(NUMERIC_FIELDS), st.sampled_from(HOSTILE_NUMBERS))
