"""XISF headers and image layout, read from a file's first bytes (XISF 1.0, monolithic).

N.I.N.A. and PixInsight save frames as XISF: the signature ``XISF0100``, the length of an
XML header (4 bytes, little-endian), 4 reserved bytes, the XML header, then data blocks
at the byte offsets the header gives. :func:`xisf_layout` judges a file from that prefix
as :func:`calib_core.fitsheader.image_layout` judges a FITS file: the image's header as
FITS cards, where its pixels are and how they are stored, within the
:class:`~calib_core.limits.ImageLimits` (the header's length from its first 16 bytes,
the pixel count and axes from the image's geometry, before anything is allocated).

The header's cards are the image's ``FITSKeyword`` elements (read as FITS card values;
those describing FITS storage, such as ``NAXIS`` or ``BZERO``, are left out: XISF's
geometry and sample format say how the pixels are stored) and then, for the §2 fields
no ``FITSKeyword`` gives, the XISF properties of :data:`PROPERTY_KEYWORDS`: a capture
program's FITS keywords win, as they are what its FITS files carry.

What is read: the first ``Image`` element, of one channel (a mono frame or the raw
colour-filter-array frame N.I.N.A. writes; a debayered colour image is not a
calibration frame and is refused), samples ``UInt8``/``UInt16``/``UInt32``/``Float32``/
``Float64`` of either byte order, in one attached data block, uncompressed or compressed
with zlib, LZ4, LZ4HC or Zstandard, with or without byte shuffling; float samples are
read from their ``bounds`` to ADU, so a PixInsight re-save (0..1) stacks with the frames
its capture program wrote (0..65535). Refused with a
message naming what is wrong: distributed XISF (data in other files or at a URL), inline
or embedded data, compressed sub-blocks, other codecs and sample formats, and XML with a
DTD or entities (parsed with :mod:`defusedxml`: no entity is ever expanded).

Pure: bytes in, cards and layout out.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import defusedxml
import defusedxml.ElementTree

from calib_core.dialects import keywords
from calib_core.fitsheader import (
    COMMENTARY_KEYWORDS,
    Card,
    Header,
    HeaderIncompleteError,
    ImageLimitError,
    InvalidFitsError,
    card_value,
    is_structural,
)
from calib_core.limits import ImageLimits

SIGNATURE = b"XISF0100"
#: Signature, header length and reserved bytes: where the XML header starts.
PREAMBLE = 16
_NAMESPACE = "{http://www.pixinsight.com/xisf}"

#: XISF sample formats read, as (NumPy kind, bytes per sample).
SAMPLE_FORMATS = {
    "UInt8": ("u", 1),
    "UInt16": ("u", 2),
    "UInt32": ("u", 4),
    "Float32": ("f", 4),
    "Float64": ("f", 8),
}
CODECS = frozenset({"zlib", "lz4", "lz4hc", "zstd"})
#: What a float image's upper bound stands for: a 16-bit camera's full scale, as PixInsight
#: reads 16-bit data into 0..1 (a 12- or 14-bit camera's data is scaled to 16 bits first).
FULL_SCALE_ADU = 65535.0

#: XISF image properties (XISF 1.0 §11.5, as N.I.N.A. and PixInsight write them) and the
#: FITS keyword each stands for, with the §2 field it gives. ``Instrument:Camera:Gain`` is
#: electrons per ADU (FITS ``EGAIN``), not the gain setting, and is not read.
PROPERTY_KEYWORDS: dict[str, tuple[str, str]] = {
    "Instrument:Camera:Name": ("INSTRUME", "camera_name"),
    "Instrument:ExposureTime": ("EXPTIME", "exposure_s"),
    "Instrument:Sensor:Temperature": ("CCD-TEMP", "temperature_c"),
    "Instrument:Sensor:TargetTemperature": ("SET-TEMP", "set_temperature_c"),
    "Instrument:Filter:Name": ("FILTER", "filter"),
    "Instrument:Camera:XBinning": ("XBINNING", "binning"),
    "Instrument:Camera:YBinning": ("YBINNING", "binning"),
    "Instrument:Camera:ISOSpeed": ("ISO", "gain"),
    "Instrument:Camera:Rotation": ("ROTATANG", "rotation_deg"),
    "Observation:Time:Start": ("DATE-OBS", "captured_at"),
}

_KEYWORD_NAME = re.compile(r"[A-Z0-9_-]{1,70}")
#: A size or offset in the header: decimal digits, fewer than any file could need more of.
_NUMBER = re.compile(r"[0-9]{1,18}")
_INTEGER_TYPES = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}
_REAL_TYPES = {"Float32", "Float64", "Float128"}


class InvalidXisfError(InvalidFitsError):
    """The bytes or file are not a readable XISF file with a 2-D one-channel image (an
    :class:`InvalidFitsError`, so every reader of frames handles it as it handles an
    unreadable FITS file)."""


class XisfLimitError(InvalidXisfError, ImageLimitError):
    """The header declares more than the :class:`~calib_core.limits.ImageLimits` allow."""


@dataclass(frozen=True)
class XisfLayout:
    """Where an XISF file's image is and how its samples are stored."""

    header: Header
    """The image's cards: its ``FITSKeyword`` elements, the properties' stand-ins, and
    ``NAXIS1``/``NAXIS2`` from its geometry."""
    width: int
    height: int
    data_offset: int
    data_bytes: int
    """Size of the data block as stored (compressed, if it is)."""
    sample_kind: str
    """``'u'`` (unsigned integer) or ``'f'`` (IEEE float)."""
    sample_bytes: int
    big_endian: bool
    codec: str | None
    """``zlib``, ``lz4``, ``lz4hc``, ``zstd``, or None for uncompressed data."""
    shuffled: bool
    """Bytes shuffled before compression: every sample's first byte, then every second..."""
    bounds: tuple[float, float] | None
    """The range a float image's samples span (its ``bounds``; PixInsight writes ``0:1``),
    read as 0 to :data:`FULL_SCALE_ADU`; None for integer samples, kept as stored."""

    @property
    def needed(self) -> int:
        """The bytes a file needs to hold the whole image (a shorter one is truncated)."""
        return self.data_offset + self.data_bytes

    @property
    def pixel_bytes(self) -> int:
        """Size of the samples once decompressed."""
        return self.width * self.height * self.sample_bytes


def is_xisf(prefix: bytes) -> bool:
    """Whether a file starting with ``prefix`` says it is a monolithic XISF file."""
    return prefix.startswith(SIGNATURE)


def xisf_layout(prefix: bytes, limits: ImageLimits | None = None) -> XisfLayout:
    """The layout of the XISF file that starts with ``prefix``.

    Raises :class:`~calib_core.fitsheader.HeaderIncompleteError` if ``prefix`` ends
    before the XML header does, :class:`XisfLimitError` for a file beyond ``limits``
    (told from the first 16 bytes for a header too long, never asking for more), and
    :class:`InvalidXisfError` for anything else wrong with it.
    """
    if len(prefix) < PREAMBLE:
        if not SIGNATURE.startswith(prefix[: len(SIGNATURE)]):
            raise InvalidXisfError("not an XISF 1.0 file (does not start with XISF0100)")
        raise HeaderIncompleteError(PREAMBLE)
    if not is_xisf(prefix):
        raise InvalidXisfError(f"not an XISF 1.0 file (signature {prefix[:8]!r}, not b'XISF0100')")
    length = int.from_bytes(prefix[8:12], "little")
    if length == 0:
        raise InvalidXisfError("malformed XISF file: its header length is 0")
    end = PREAMBLE + length
    if limits is not None and end > limits.max_header_bytes:
        raise XisfLimitError(
            f"header longer than {limits.max_header_bytes} bytes (CALIB_MAX_HEADER_BYTES): "
            f"the XISF header declares {length} bytes"
        )
    if len(prefix) < end:
        raise HeaderIncompleteError(end)
    root = _parse_xml(prefix[PREAMBLE:end])
    image = root.find(f"{_NAMESPACE}Image")
    if image is None:
        raise InvalidXisfError("no image in the XISF header (no Image element)")
    return _layout(image, end, limits)


def _parse_xml(text: bytes) -> ElementTree.Element:
    try:
        root = defusedxml.ElementTree.fromstring(
            text.rstrip(b"\0"), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as error:
        raise InvalidXisfError(f"XISF header refused: {error}") from error
    except (ElementTree.ParseError, LookupError, ValueError) as error:  # or an unknown encoding
        raise InvalidXisfError(f"malformed XISF header (XML: {error})") from error
    if root.tag != f"{_NAMESPACE}xisf":
        raise InvalidXisfError(f"malformed XISF header: its root element is {root.tag!r}")
    return root


def _layout(image: ElementTree.Element, header_end: int, limits: ImageLimits | None) -> XisfLayout:
    width, height, channels = _geometry(image.get("geometry", ""), limits)
    if channels != 1:
        raise InvalidXisfError(
            f"the XISF image has {channels} channels (colorSpace "
            f"{image.get('colorSpace', 'Gray')}): a calibration frame is one channel of raw "
            "sensor data (a mono or colour-filter-array frame), not a debayered colour image"
        )
    sample = image.get("sampleFormat", "")
    if sample not in SAMPLE_FORMATS:
        raise InvalidXisfError(
            f"XISF sample format {sample!r} is not read (only {', '.join(SAMPLE_FORMATS)})"
        )
    kind, size = SAMPLE_FORMATS[sample]
    byte_order = image.get("byteOrder", "little")
    if byte_order not in ("little", "big"):
        raise InvalidXisfError(f"malformed XISF image: byteOrder {byte_order!r}")
    offset, stored = _attachment(image.get("location", ""), header_end)
    codec, shuffled = _compression(image, width * height * size, size)
    if codec is None and stored != width * height * size:
        raise InvalidXisfError(
            f"malformed XISF image: its data block is {stored} bytes, its geometry "
            f"{width}x{height} of {sample} needs {width * height * size}"
        )
    cards = [Card("NAXIS1", width), Card("NAXIS2", height), *_cards(image)]
    return XisfLayout(
        header=Header(cards),
        width=width,
        height=height,
        data_offset=offset,
        data_bytes=stored,
        sample_kind=kind,
        sample_bytes=size,
        big_endian=byte_order == "big",
        codec=codec,
        shuffled=shuffled,
        bounds=_bounds(image.get("bounds")) if kind == "f" else None,
    )


def _bounds(text: str | None) -> tuple[float, float] | None:
    """The ``bounds`` of a float image (``'0:1'``); XISF requires them, so an image
    without them is read as stored."""
    if text is None:
        return None
    low, separator, high = text.partition(":")
    try:
        bounds = float(low), float(high)
    except ValueError:
        bounds = (math.nan, math.nan)
    if not separator or not all(map(math.isfinite, bounds)) or bounds[0] >= bounds[1]:
        raise InvalidXisfError(
            f"malformed XISF image bounds {text!r}: a float image's samples span low:high"
        )
    return bounds


def _geometry(text: str, limits: ImageLimits | None) -> tuple[int, int, int]:
    """Width, height and channels of ``geometry`` (``'4144:2822:1'``), judged against the
    limits before anything else."""
    parts = text.split(":")
    if len(parts) < 2 or not all(_NUMBER.fullmatch(part) for part in parts):
        raise InvalidXisfError(f"malformed XISF image geometry {text!r}")
    sizes = [int(part) for part in parts]
    if limits is not None and len(sizes) > limits.max_axes:
        raise XisfLimitError(
            f"image has {len(sizes)} axes (geometry {text!r}), more than the limit of "
            f"{limits.max_axes}"
        )
    pixels = 1
    for size in sizes:
        pixels *= size
    if limits is not None and pixels > limits.max_pixels:
        raise XisfLimitError(
            f"image too large: its geometry {text!r} declares {pixels} samples, more than "
            f"the limit of {limits.max_pixels} (CALIB_MAX_IMAGE_PIXELS)"
        )
    if len(sizes) != 3 or min(sizes) < 1:
        raise InvalidXisfError(
            f"the XISF image is not a 2-D image (geometry {text!r}: width:height:channels)"
        )
    return sizes[0], sizes[1], sizes[2]


def _attachment(location: str, header_end: int) -> tuple[int, int]:
    """Offset and size of an attached data block (``attachment:4096:2764800``)."""
    kind, _, rest = location.partition(":")
    if kind in ("url", "path") or location.startswith(("url(", "path(")):
        raise InvalidXisfError(
            f"distributed XISF (data at {location!r}): only monolithic XISF files, with "
            "the image's data attached, are read"
        )
    if kind != "attachment":
        raise InvalidXisfError(
            f"XISF image data location {location!r} is not read (only attached data blocks)"
        )
    parts = rest.split(":")
    if len(parts) != 2 or not all(_NUMBER.fullmatch(part) for part in parts):
        raise InvalidXisfError(f"malformed XISF data block location {location!r}")
    offset, size = int(parts[0]), int(parts[1])
    if offset < header_end or size < 1:
        raise InvalidXisfError(
            f"malformed XISF data block location {location!r}: it must follow the header "
            f"(ends at byte {header_end}) and hold data"
        )
    return offset, size


def _compression(
    image: ElementTree.Element, pixel_bytes: int, size: int
) -> tuple[str | None, bool]:
    """The codec (None if uncompressed) and whether bytes are shuffled."""
    text = image.get("compression")
    if text is None:
        return None, False
    if image.get("subblocks") is not None:
        raise InvalidXisfError("XISF compressed sub-blocks are not read")
    parts = text.split(":")
    codec, shuffled = parts[0].removesuffix("+sh"), parts[0].endswith("+sh")
    if codec not in CODECS:
        raise InvalidXisfError(
            f"XISF compression codec {parts[0]!r} is not read (only zlib, lz4, lz4hc, zstd, "
            "each maybe with byte shuffling '+sh')"
        )
    if len(parts) not in (2, 3) or not all(_NUMBER.fullmatch(part) for part in parts[1:]):
        raise InvalidXisfError(f"malformed XISF compression {text!r}")
    if int(parts[1]) != pixel_bytes:
        raise InvalidXisfError(
            f"malformed XISF compression {text!r}: the image's samples take {pixel_bytes} bytes"
        )
    if shuffled and (len(parts) != 3 or int(parts[2]) != size):
        raise InvalidXisfError(
            f"malformed XISF compression {text!r}: shuffled items must be the {size}-byte samples"
        )
    return codec, shuffled


# -- cards ---------------------------------------------------------------------------------
def _cards(image: ElementTree.Element) -> Iterator[Card]:
    """The image's ``FITSKeyword`` cards, then its properties' stand-ins for the fields
    the keywords leave out."""
    cards = list(_fits_keywords(image))
    given = {card.keyword for card in cards}
    yield from cards
    for name, value in _properties(image):
        keyword, field = PROPERTY_KEYWORDS[name]
        if not given.intersection(keywords(field)):
            yield Card(keyword, value, f"XISF {name}")


def _fits_keywords(image: ElementTree.Element) -> Iterator[Card]:
    for element in image.iter(f"{_NAMESPACE}FITSKeyword"):
        name = element.get("name", "").strip().upper()
        value, comment = element.get("value", ""), _ascii(element.get("comment", ""))
        if not _KEYWORD_NAME.fullmatch(name) and name not in COMMENTARY_KEYWORDS:
            continue  # no FITS keyword: nothing reads it
        if name in COMMENTARY_KEYWORDS:
            yield Card(name, _ascii(value.strip("'").strip() or comment))
            continue
        if is_structural(name):
            continue
        try:
            parsed, written_comment = card_value(name, value)
        except InvalidFitsError:  # an unclosed quote: the text is still a value
            parsed, written_comment = value.strip().strip("'").strip(), ""
        yield Card(name, parsed, comment or written_comment)


def _properties(image: ElementTree.Element) -> Iterator[tuple[str, Any]]:
    """The image's properties of :data:`PROPERTY_KEYWORDS` that hold a value of their
    type (one that does not is left out: a property never makes a frame unreadable)."""
    for element in image.iter(f"{_NAMESPACE}Property"):
        name = element.get("id", "")
        if name not in PROPERTY_KEYWORDS:
            continue
        kind = element.get("type", "")
        text = element.get("value")
        if text is None:
            text = element.text or ""
        text = text.strip()
        try:
            if kind in _INTEGER_TYPES:
                yield name, int(text)
            elif kind in _REAL_TYPES:
                yield name, float(text)
            elif kind in ("String", "TimePoint") and text:
                yield name, text
        except ValueError:
            continue


def _ascii(text: str) -> str:
    """Text a FITS card can hold (printable ASCII): other characters become '?'."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)
