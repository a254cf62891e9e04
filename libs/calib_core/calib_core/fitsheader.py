"""FITS headers and image layout, read from a file's first bytes.

Frames are 2-D images: in the primary HDU, in the first image extension (the primary's
keywords merged in), or tile-compressed (fpack: a ``ZIMAGE = T`` binary table whose
``ZBITPIX``/``ZNAXISn`` describe the image). :func:`image_layout` finds that image in a
prefix of a file and names its header and the bytes the file needs up to the end of the
image's data, or asks for a longer prefix; so the registry judges an object from one
ranged read, and the numerics read pixels from a known offset.

Card values are parsed as astropy parses them (strings, logicals, integers, reals,
complex numbers, undefined; ``CONTINUE`` long strings; ``HIERARCH`` keywords).

Given :class:`~calib_core.limits.ImageLimits`, a file is judged against them from the
same first bytes (SPEC §12): an image declaring too many pixels or axes, or a header that
does not end within the limit, raises :class:`ImageLimitError` without a longer prefix
being asked for.

Pure: bytes in, cards and layout out. Nothing here opens a file or an object;
:func:`read_image_layout` reads only through a file its caller has open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from calib_core.limits import ImageLimits

BLOCK = 2880
CARD = 80

#: Cards whose text is not a value: they may repeat and are not keys of a :class:`Header`.
COMMENTARY_KEYWORDS = frozenset({"COMMENT", "HISTORY", ""})

# How an HDU is stored: its kind and shape, its checksums, a binary table's columns,
# and a tile-compressed image's compression.
_STORAGE_KEYWORD = re.compile(
    r"SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|CHECKSUM|DATASUM|END"
    r"|TFIELDS|THEAP|(TTYPE|TFORM|TUNIT|TNULL|TSCAL|TZERO|TDISP|TDIM|TBCOL"
    r"|TCTYP|TCUNI|TCRPX|TCRVL|TCDLT|TROT|TLMIN|TLMAX|TDMIN|TDMAX)\d+"
    r"|ZIMAGE|ZCMPTYPE|ZBITPIX|ZNAXIS\d*|ZTILE\d+|ZNAME\d+|ZVAL\d+|ZQUANTIZ|ZDITHER0"
    r"|ZSIMPLE|ZTENSION|ZEXTEND|ZBLOCKED|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM|ZMASKCMP"
    r"|ZBLANK|ZSCALE|ZZERO"
)
#: How the stored values map to the image's (part of an image HDU, not of a copy).
_SCALING_KEYWORDS = frozenset({"BZERO", "BSCALE", "BLANK"})
_BYTES_PER_PIXEL = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}


def is_structural(keyword: str) -> bool:
    """True for a keyword that describes a file's storage rather than the image: never
    carried from one header into another (a primary HDU's into its image extension's, a
    light's into its calibrated copy, a template's into a new file)."""
    return (
        keyword in _SCALING_KEYWORDS
        or keyword == "EXTNAME"
        or _STORAGE_KEYWORD.fullmatch(keyword) is not None
    )


class InvalidFitsError(ValueError):
    """The bytes or file are not a readable FITS file with a 2-D image."""

    def __init__(self, message: str, path: object = None):
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = str(path) if path is not None else None


class HeaderIncompleteError(InvalidFitsError):
    """The prefix ends inside a header (the one starting at byte ``offset``); a prefix of
    at least ``needed`` bytes may hold it."""

    def __init__(self, needed: int, offset: int = 0):
        super().__init__(f"FITS header incomplete: need at least {needed} bytes")
        self.needed = needed
        self.offset = offset


class ImageLimitError(InvalidFitsError):
    """The header declares more than the :class:`~calib_core.limits.ImageLimits` allow;
    the message names the limit."""


class Card(NamedTuple):
    """One keyword record (a ``CONTINUE`` long string joined into one). The value of a
    commentary card is its text. A plain tuple to astropy, which takes it as a card."""

    keyword: str
    value: Any
    comment: str = ""


class Header(Mapping[str, Any]):
    """A header's cards in order; as a mapping, the value of each keyword's first card
    (commentary cards are only in :attr:`cards`)."""

    def __init__(self, cards: Iterable[Card]):
        self.cards = tuple(cards)
        self._values: dict[str, Any] = {}
        for card in self.cards:
            if card.keyword not in COMMENTARY_KEYWORDS:
                self._values.setdefault(card.keyword, card.value)

    def __getitem__(self, keyword: str) -> Any:
        return self._values[keyword]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Header({self._values!r})"


@dataclass(frozen=True)
class ImageLayout:
    """Where a file's 2-D image is."""

    header: Header
    """The image's header: a compressed image's as if it were not compressed, an
    extension's with the primary HDU's keywords it lacks."""
    hdu_index: int
    data_offset: int
    """Byte offset of the HDU's data."""
    data_bytes: int
    """Unpadded size of the HDU's data (a compressed image's table with its heap)."""
    compressed: bool

    @property
    def needed(self) -> int:
        """The bytes a file needs to hold the whole image (a shorter one is truncated)."""
        return self.data_offset + self.data_bytes


def image_layout(prefix: bytes, limits: ImageLimits | None = None) -> ImageLayout:
    """The layout of the first 2-D image of the file that starts with ``prefix``.

    Raises :class:`HeaderIncompleteError` if ``prefix`` ends before the image's header
    does, and :class:`InvalidFitsError` if it is not FITS or holds no 2-D image; with
    ``limits``, :class:`ImageLimitError` for a file beyond them (rather than asking for
    a prefix longer than ``limits.max_header_bytes``).
    """
    offset = 0
    index = 0
    primary: Header | None = None
    while True:
        try:
            header, data_offset = _parse_header(prefix, offset, primary=index == 0)
        except HeaderIncompleteError as error:
            if limits is not None and error.needed > limits.max_header_bytes:
                raise _header_too_long(limits) from error
            raise
        if limits is not None:
            if data_offset > limits.max_header_bytes:
                raise _header_too_long(limits)
            _check_axes(header, limits)
        data_bytes = _data_bytes(header)
        if primary is None:
            primary = header
        kind = _hdu_kind(header)
        if kind is not None:
            image = _uncompressed_header(header) if kind == "compressed" else header
            if limits is not None:
                _check_pixels(image, limits, compressed=kind == "compressed")
            _check_2d(image, index)
            if index > 0:
                image = _merge_primary(image, primary)
            return ImageLayout(image, index, data_offset, data_bytes, kind == "compressed")
        offset = data_offset + _padded(data_bytes)
        index += 1


class SeekableFile(Protocol):
    """An open binary file (or spooled upload)."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def read(self, size: int = -1, /) -> bytes: ...


def read_image_layout(
    file: SeekableFile, first_read: int = 4 * BLOCK, limits: ImageLimits | None = None
) -> ImageLayout:
    """The layout of the FITS file the caller has open, read from its start a growing
    prefix at a time (a large file is not read in full to be judged; with ``limits``, no
    more than about ``limits.max_header_bytes``). Raises :class:`InvalidFitsError` also
    when the file ends inside a header or before the end of its image's data."""
    size = file.seek(0, 2)
    length = first_read
    while True:
        file.seek(0)
        prefix = file.read(length)
        try:
            layout = image_layout(prefix, limits)
        except HeaderIncompleteError as error:
            if len(prefix) < length:
                if error.offset >= len(prefix):
                    raise InvalidFitsError("no 2-D image before the end of the file") from error
                raise InvalidFitsError("the file ends inside a FITS header") from error
            length = max(error.needed, 2 * length)
            if limits is not None:  # image_layout refused any header needing more
                length = min(length, max(limits.max_header_bytes, error.needed))
            continue
        if size < layout.needed:
            raise InvalidFitsError(
                f"truncated: the image needs {layout.needed} bytes, the file has {size}"
            )
        return layout


# -- headers -------------------------------------------------------------------------------
def _parse_header(prefix: bytes, offset: int, *, primary: bool) -> tuple[Header, int]:
    """The header starting at ``offset`` and the offset of its data."""
    first_card = b"SIMPLE  =" if primary else b"XTENSION="
    if not first_card.startswith(prefix[offset : offset + len(first_card)]):
        if primary:
            raise InvalidFitsError("not a FITS file (does not start with SIMPLE)")
        raise InvalidFitsError(f"no 2-D image (no extension header at byte {offset})")
    end = offset
    while prefix[end : end + 8] != b"END     ":
        end += CARD
        if end + CARD > len(prefix):
            raise HeaderIncompleteError(offset + _padded(end - offset + 1), offset)
    try:
        text = prefix[offset:end].decode("ascii")
    except UnicodeDecodeError as error:
        raise InvalidFitsError(f"malformed FITS header: {error}") from error
    return Header(_cards(text)), offset + _padded(end + CARD - offset)


_NUMBER = r"[+-]? *(?:\.\d+|\d+(?:\.\d*)?) *(?:[deDE] *[+-]? *\d+)?"
# astropy's: a quote inside a string is doubled, but a lone one is taken as text when
# the string can only end later (the closing quote is followed by a blank, "/" or the end)
_QUOTED = r"'(?P<string>(?:[ -~]+?|''|) *?)'(?=$|/| )"
_COMMENT = r"(?:/ *(?P<comment>.*))?"
_VALUE = re.compile(
    rf" *(?:{_QUOTED}|(?P<logical>[TF])|(?P<number>{_NUMBER})"
    rf"|\( *(?P<real>{_NUMBER}) *, *(?P<imaginary>{_NUMBER}) *\))? *{_COMMENT}"
)
_CONTINUED = re.compile(rf" *(?:{_QUOTED})? *{_COMMENT}")


def _cards(text: str) -> Iterator[Card]:
    """The cards of a header's text (80 characters each, up to its END card). A card
    without a value indicator is commentary (FITS 4.0 §4.1.2.2); one of these other than
    COMMENT, HISTORY and blank, or a stray CONTINUE, is left out."""
    images = [text[start : start + CARD] for start in range(0, len(text), CARD)]
    index = 0
    while index < len(images):
        image = images[index]
        index += 1
        keyword = image[:8].rstrip().upper()
        if keyword in COMMENTARY_KEYWORDS:
            yield Card(keyword, image[8:].rstrip())
            continue
        if image.startswith("HIERARCH ") and "=" in image:
            name, field = image[9:].split("=", 1)
            keyword = name.strip()
        elif image[8:10] == "= ":
            field = image[10:]
        else:
            continue
        value, comment, written = _value(keyword, field)
        if written is not None:
            parts, comments = [written], [comment] if comment else []
            while index < len(images) and images[index].startswith("CONTINUE"):
                more = _CONTINUED.fullmatch(images[index][8:])
                if more is None:
                    break
                parts.append(more["string"] or "")
                if more["comment"]:
                    comments.append(more["comment"].rstrip())
                index += 1
            if len(parts) > 1:  # joined as astropy joins a long string
                value = "".join(_without_ampersand(p.rstrip()) for p in parts)
                value = value.replace("''", "'").rstrip()
                comment = " ".join(comments)
        yield Card(keyword, value, comment)


def card_value(keyword: str, field: str) -> tuple[Any, str]:
    """The value and comment of a card's value field (the text after ``= ``) as a header
    card's are read; XISF ``FITSKeyword`` elements hold their values so."""
    value, comment, _ = _value(keyword, field)
    return value, comment


def _without_ampersand(part: str) -> str:
    return part[:-1] if part.endswith("&") else part


def _value(keyword: str, field: str) -> tuple[Any, str, str | None]:
    """A value field's value and comment, and for a string its text as written (quotes
    still doubled), which ``CONTINUE`` cards may extend."""
    found = _VALUE.fullmatch(field)
    if found is None:
        if is_structural(keyword) or field.lstrip().startswith("'"):  # or an unclosed string
            raise InvalidFitsError(f"malformed FITS header: unparsable value of {keyword}")
        # a capture program's free text the standard would quote (N.I.N.A. 1.9 writes
        # DATE-OBS= 2023-01-01T00:00:00 unquoted): read as that text, as astropy's
        # lenient mode does; the card's reader then judges the text
        text, _, comment = field.partition(" /")
        return text.strip(), comment.strip(), None
    comment = (found["comment"] or "").rstrip()
    if found["string"] is not None:
        written = found["string"]
        return written.replace("''", "'").rstrip(), comment, written
    if found["logical"] is not None:
        return found["logical"] == "T", comment, None
    if found["number"] is not None:
        return _number(found["number"]), comment, None
    if found["real"] is not None:
        return complex(_number(found["real"]), _number(found["imaginary"])), comment, None
    return None, comment, None


def _number(text: str) -> int | float:
    text = text.replace(" ", "").replace("D", "E").replace("d", "e")
    try:
        return int(text)
    except ValueError:
        return float(text)


# -- structure -----------------------------------------------------------------------------
def _int_keyword(header: Mapping[str, Any], keyword: str, default: int | None = None) -> int:
    value = header.get(keyword, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFitsError(f"malformed FITS header: {keyword} = {value!r}")
    return value


def _data_bytes(header: Header) -> int:
    naxis = _int_keyword(header, "NAXIS")
    if naxis == 0:
        return 0
    bitpix = _int_keyword(header, "BITPIX")
    if bitpix not in _BYTES_PER_PIXEL:
        raise InvalidFitsError(f"malformed FITS header: BITPIX = {bitpix}")
    elements = 1
    for axis in range(1, naxis + 1):
        elements *= _count_keyword(header, f"NAXIS{axis}")
    pcount = _count_keyword(header, "PCOUNT", 0)
    gcount = _count_keyword(header, "GCOUNT", 1)
    return _BYTES_PER_PIXEL[bitpix] * gcount * (pcount + elements)


def _count_keyword(header: Mapping[str, Any], keyword: str, default: int | None = None) -> int:
    """A size: never negative (a negative one would point the next HDU backwards)."""
    value = _int_keyword(header, keyword, default)
    if value < 0:
        raise InvalidFitsError(f"malformed FITS header: {keyword} = {value}")
    return value


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _hdu_kind(header: Header) -> str | None:
    """'image' or 'compressed' if the HDU holds an image with >= 2 axes, else None."""
    xtension = str(header.get("XTENSION", "")).strip()
    if xtension == "BINTABLE" and header.get("ZIMAGE") is True:
        return "compressed" if _int_keyword(header, "ZNAXIS") >= 2 else None
    if "SIMPLE" in header or xtension == "IMAGE":
        return "image" if _int_keyword(header, "NAXIS") >= 2 else None
    return None


def _check_2d(header: Header, index: int) -> None:
    naxis = _int_keyword(header, "NAXIS")
    sizes = [_int_keyword(header, f"NAXIS{axis}") for axis in range(1, naxis + 1)]
    if sizes[0] < 1 or sizes[1] < 1 or any(size != 1 for size in sizes[2:]):
        raise InvalidFitsError(f"HDU {index} is not a 2-D image (axes {sizes})")


# -- limits --------------------------------------------------------------------------------
def _header_too_long(limits: ImageLimits) -> ImageLimitError:
    return ImageLimitError(
        f"header longer than {limits.max_header_bytes} bytes (CALIB_MAX_HEADER_BYTES): "
        f"no image header ends within the file's first {limits.max_header_bytes} bytes"
    )


def _check_axes(header: Header, limits: ImageLimits) -> None:
    """An image HDU (or a tile-compressed one) with more axes than the limit."""
    xtension = str(header.get("XTENSION", "")).strip()
    if xtension == "BINTABLE" and header.get("ZIMAGE") is True:
        keyword = "ZNAXIS"
    elif "SIMPLE" in header or xtension == "IMAGE":
        keyword = "NAXIS"
    else:
        return
    naxis = _int_keyword(header, keyword)
    if naxis > limits.max_axes:
        raise ImageLimitError(
            f"image has {naxis} axes ({keyword} = {naxis}), more than the limit of "
            f"{limits.max_axes}"
        )


def _check_pixels(image: Header, limits: ImageLimits, *, compressed: bool) -> None:
    """An image (a compressed one by its uncompressed ``ZNAXISn``) with more pixels than
    the limit."""
    sizes = [_int_keyword(image, f"NAXIS{axis}") for axis in range(1, image["NAXIS"] + 1)]
    pixels = 1
    for size in sizes:
        pixels *= max(size, 0)
    if pixels > limits.max_pixels:
        prefix = "ZNAXIS" if compressed else "NAXIS"
        names = " x ".join(f"{prefix}{axis}" for axis in range(1, len(sizes) + 1))
        shape = " x ".join(str(size) for size in sizes)
        raise ImageLimitError(
            f"image too large: its header declares {shape} = {pixels} pixels ({names}), "
            f"more than the limit of {limits.max_pixels} (CALIB_MAX_IMAGE_PIXELS)"
        )


def _uncompressed_header(table: Header) -> Header:
    """The image header of a tile-compressed HDU (ZBITPIX -> BITPIX, ZNAXISn -> NAXISn...)."""
    naxis = _int_keyword(table, "ZNAXIS")
    bitpix = _int_keyword(table, "ZBITPIX")
    if bitpix not in _BYTES_PER_PIXEL:
        raise InvalidFitsError(f"malformed FITS header: ZBITPIX = {bitpix}")
    cards = [
        Card("XTENSION", "IMAGE"),
        Card("BITPIX", bitpix),
        Card("NAXIS", naxis),
        *(
            Card(f"NAXIS{axis}", _int_keyword(table, f"ZNAXIS{axis}"))
            for axis in range(1, naxis + 1)
        ),
        Card("PCOUNT", 0),
        Card("GCOUNT", 1),
    ]
    cards += [
        card
        for card in table.cards
        if not _STORAGE_KEYWORD.fullmatch(card.keyword)
        and not (card.keyword == "EXTNAME" and card.value == "COMPRESSED_IMAGE")
    ]
    if cards[1].value > 0 and "BLANK" not in table and "ZBLANK" in table:
        cards.append(Card("BLANK", table["ZBLANK"]))
    return Header(cards)


def _merge_primary(image: Header, primary: Header) -> Header:
    """The image extension's header with the primary header's keywords it lacks."""
    return Header(
        [
            *image.cards,
            *(
                card
                for card in primary.cards
                if card.keyword not in COMMENTARY_KEYWORDS
                and not is_structural(card.keyword)
                and card.keyword not in image
            ),
        ]
    )
