"""XISF 1.0 files as N.I.N.A. and PixInsight write them (monolithic: signature, header
length, reserved bytes, the XML header, then the image's attached data block), built
from the format's specification and the programs' documented habits: ``FITSKeyword``
elements holding FITS card values, XISF properties (``Instrument:Camera:Name``...),
uncompressed or compressed (zlib, LZ4, Zstandard), with or without byte shuffling.
Used by the XISF tests and the mixed-dialect registry benchmark."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import quoteattr

import lz4.block
import numpy as np
import zstandard
from astropy.io import fits

from tests.support.dialects import DARK, DIALECTS, FLAT, LIGHT, at

SAMPLE_FORMATS = {
    np.dtype(np.uint8): "UInt8",
    np.dtype(np.uint16): "UInt16",
    np.dtype(np.uint32): "UInt32",
    np.dtype(np.float32): "Float32",
    np.dtype(np.float64): "Float64",
}
#: where N.I.N.A. and PixInsight start a data block: the next multiple of 4096 bytes
BLOCK_ALIGNMENT = 4096

#: (name, value as a FITS card writes it, comment)
Keyword = tuple[str, str, str]
#: (id, XISF type, value)
Property = tuple[str, str, object]


def compress(data: bytes, codec: str) -> bytes:
    if codec == "zlib":
        return zlib.compress(data)
    if codec in ("lz4", "lz4hc"):
        mode = "high_compression" if codec == "lz4hc" else "default"
        return lz4.block.compress(data, mode=mode, store_size=False)
    if codec == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(codec)


def shuffled(data: bytes, item_size: int) -> bytes:
    """XISF byte shuffling: every item's first byte, then every item's second..."""
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, item_size).T.tobytes()


def xisf_bytes(
    pixels: np.ndarray,
    *,
    keywords: Sequence[Keyword] = (),
    properties: Sequence[Property] = (),
    codec: str | None = None,
    shuffle: bool = False,
    big_endian: bool = False,
    image_attributes: Mapping[str, str] | None = None,
    header: str | None = None,
    block: bytes | None = None,
) -> bytes:
    """A monolithic XISF file of a 2-D image (``pixels``, height x width), its
    ``keywords`` and ``properties``. For hostile files: ``image_attributes`` replace the
    ``Image`` element's attributes (or add some), ``header`` the whole XML header, and
    ``block`` the data block as stored."""
    dtype = pixels.dtype.newbyteorder(">" if big_endian else "<")
    data = np.ascontiguousarray(pixels, dtype=dtype).tobytes()
    attributes = {
        "geometry": f"{pixels.shape[1]}:{pixels.shape[0]}:1",
        "sampleFormat": SAMPLE_FORMATS[pixels.dtype],
        "colorSpace": "Gray",
        "byteOrder": "big" if big_endian else "little",
    }
    if codec is not None:
        if shuffle:
            data = shuffled(data, pixels.dtype.itemsize)
        name = f"{codec}+sh" if shuffle else codec
        attributes["compression"] = f"{name}:{pixels.nbytes}" + (
            f":{pixels.dtype.itemsize}" if shuffle else ""
        )
        data = compress(data, codec)
    if block is not None:
        data = block

    def render(offset: int) -> bytes:
        if header is not None:
            return header.encode()
        image = {**attributes, "location": f"attachment:{offset}:{len(data)}"}
        image.update(image_attributes or {})
        children = [
            f"<FITSKeyword name={quoteattr(n)} value={quoteattr(v)} comment={quoteattr(c)}/>"
            for n, v, c in keywords
        ]
        children += [_property(*p) for p in properties]
        image_attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in image.items())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<xisf version="1.0" xmlns="http://www.pixinsight.com/xisf">'
            f"<Image {image_attrs}>{''.join(children)}</Image>"
            '<Metadata><Property id="XISF:CreatorApplication" type="String">calib tests'
            "</Property></Metadata></xisf>"
        ).encode()

    draft = render(0)
    offset = -(-(16 + len(draft) + 32) // BLOCK_ALIGNMENT) * BLOCK_ALIGNMENT
    xml = render(offset)
    preamble = b"XISF0100" + len(xml).to_bytes(4, "little") + bytes(4)
    padding = bytes(max(offset - 16 - len(xml), 0))
    return preamble + xml + padding + data


def _property(name: str, kind: str, value: object) -> str:
    if kind == "String":  # a string's value is the element's text
        text = str(value).replace("&", "&amp;").replace("<", "&lt;")
        return f'<Property id="{name}" type="String">{text}</Property>'
    return f'<Property id="{name}" type="{kind}" value={quoteattr(str(value))}/>'


def fits_keywords(cards: Sequence[tuple[str, str]]) -> list[Keyword]:
    """A FITS header's cards (tests/support/dialects.py) as ``FITSKeyword`` elements."""
    return [(name, value, "") for name, value in cards]


def keywords_of(header: fits.Header) -> list[Keyword]:
    """An astropy header's cards as ``FITSKeyword`` elements, values as FITS writes them."""
    return [
        (card.keyword, fits.Card(card.keyword, card.value).image[10:].strip(), card.comment)
        for card in header.cards
    ]


#: N.I.N.A. 3.x's XISF: its FITS keywords, and the XISF properties it also writes
_NINA_FITS = next(d for d in DIALECTS if d[0] == "N.I.N.A. 3.x")
NINA_KEYWORDS = fits_keywords(
    [card for card in _NINA_FITS[1] if card[0] not in ("ROTATOR", "ROTATANG")] + [("EGAIN", "0.21")]
)
NINA_PROPERTIES: list[Property] = [
    ("Instrument:Camera:Name", "String", "ZWO ASI2600MM Pro"),
    ("Instrument:Camera:Gain", "Float32", 0.21),  # electrons per ADU, not the gain setting
    ("Instrument:Camera:XBinning", "Int32", 1),
    ("Instrument:Camera:YBinning", "Int32", 1),
    ("Instrument:ExposureTime", "Float32", 60.0),
    ("Instrument:Sensor:Temperature", "Float32", -9.8),
    ("Instrument:Sensor:TargetTemperature", "Float32", -10.0),
    ("Observation:Time:Start", "TimePoint", "2024-05-01T22:15:30.123Z"),
]
#: what the same dark as N.I.N.A. 3.x's FITS gives, but its rotator (not in this sample)
NINA_FIELDS = {name: value for name, value in _NINA_FITS[2].items() if name != "rotation_deg"}

# program -> FITS keywords, properties, codec and shuffling -> the §2 fields read (besides
# width 64 and height 48)
XISF_DIALECTS = [
    ("N.I.N.A. 3.x XISF", NINA_KEYWORDS, NINA_PROPERTIES, None, False, NINA_FIELDS),
    (
        "N.I.N.A. XISF, LZ4 with byte shuffling (a flat)",
        fits_keywords(
            [
                ("IMAGETYP", "'FLAT'"),
                ("EXPOSURE", "2.5"),
                ("EXPTIME", "2.5"),
                ("XBINNING", "2"),
                ("YBINNING", "2"),
                ("GAIN", "0"),
                ("INSTRUME", "'QHY268M'"),
                ("FILTER", "'Ha'"),
                ("CCD-TEMP", "-15.1"),
            ]
        ),
        [
            ("Instrument:Camera:Name", "String", "QHY268M"),
            ("Instrument:Filter:Name", "String", "Ha"),
            ("Instrument:ExposureTime", "Float32", 2.5),
        ],
        "lz4",
        True,
        {
            "frame_type": FLAT,
            "exposure_s": 2.5,
            "binning": "2x2",
            "gain": 0.0,
            "camera_name": "QHY268M",
            "filter": "Ha",
            "temperature_c": -15.1,
        },
    ),
    (
        "PixInsight re-save, zlib with byte shuffling (every value quoted)",
        fits_keywords(
            [
                ("SIMPLE", "T"),
                ("BITPIX", "16"),
                ("NAXIS", "2"),
                ("NAXIS1", "9576"),
                ("BZERO", "32768"),
                ("IMAGETYP", "'Light Frame'"),
                ("EXPTIME", "'300.0'"),
                ("GAIN", "'120'"),
                ("INSTRUME", "'ZWO ASI6200MM Pro'"),
                ("FILTER", "'OIII'"),
                ("DATE-OBS", "'2024-02-03T01:02:03.5'"),
            ]
        ),
        [
            ("PCL:CFASourcePattern", "String", "RGGB"),
            ("Instrument:Camera:XBinning", "Int32", 1),
            ("Instrument:Camera:YBinning", "Int32", 1),
            ("Instrument:Sensor:Temperature", "Float64", -20.0),
        ],
        "zlib",
        True,
        {
            "frame_type": LIGHT,
            "exposure_s": 300.0,
            "gain": 120.0,
            "camera_name": "ZWO ASI6200MM Pro",
            "filter": "OIII",
            "captured_at": at("2024-02-03T01:02:03.5"),
            "binning": "1x1",
            "temperature_c": -20.0,
        },
    ),
    (
        "XISF properties only (no FITS keywords), Zstandard",
        [],
        [
            ("Instrument:Camera:Name", "String", "Atik Horizon II"),
            ("Instrument:ExposureTime", "Float64", 45.0),
            ("Instrument:Sensor:Temperature", "Float32", -5.5),
            ("Instrument:Sensor:TargetTemperature", "Float32", -5.0),
            ("Instrument:Filter:Name", "String", "R"),
            ("Instrument:Camera:XBinning", "UInt8", 2),
            ("Instrument:Camera:YBinning", "UInt8", 1),
            ("Instrument:Camera:ISOSpeed", "Int32", 400),
            ("Instrument:Camera:Rotation", "Float32", 90.5),
            ("Observation:Time:Start", "TimePoint", "2023-11-05T03:04:05Z"),
        ],
        "zstd",
        False,
        {
            "camera_name": "Atik Horizon II",
            "exposure_s": 45.0,
            "temperature_c": -5.5,
            "set_temperature_c": -5.0,
            "filter": "R",
            "binning": "2x1",
            "gain": 400.0,
            "rotation_deg": 90.5,
            "captured_at": at("2023-11-05T03:04:05"),
        },
    ),
    (
        "FITS keywords and properties disagree (the keywords win)",
        fits_keywords(
            [
                ("IMAGETYP", "'DARK'"),
                ("EXPOSURE", "120"),
                ("INSTRUME", "'ZWO ASI533MM Pro'"),
                ("CCD-TEMP", "-10.0"),
            ]
        ),
        [
            ("Instrument:Camera:Name", "String", "ASI533MM"),
            ("Instrument:ExposureTime", "Float32", 119.99),
            ("Instrument:Sensor:Temperature", "Float32", -9.7),
        ],
        None,
        False,
        {
            "frame_type": DARK,
            "exposure_s": 120.0,
            "camera_name": "ZWO ASI533MM Pro",
            "temperature_c": -10.0,
        },
    ),
]
