"""Frame metadata from a registration event and N.I.N.A. FITS header keywords (SPEC §2).

Numbers are held to their ranges (SPEC §12, :mod:`calib_core.limits`): a header card out
of its field's range is read as absent when the field is optional, and rejects the frame,
naming the card, when the field is required and the event does not give it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from calib_core.limits import OutOfRangeError, check_fields, out_of_range
from calib_core.models import FrameMetadata, FrameType

REQUIRED_FIELDS = ("frame_type", "camera_name", "exposure_s", "width", "height")

_FRAME_TYPE_WORDS = {
    "dark": FrameType.DARK,
    "darkflat": FrameType.DARK,  # N.I.N.A.'s DARKFLAT: a dark at a flat's exposure
    "flat": FrameType.FLAT,
    "bias": FrameType.BIAS,
    "offset": FrameType.BIAS,
    "zero": FrameType.BIAS,
    "light": FrameType.LIGHT,
    "object": FrameType.LIGHT,
    "science": FrameType.LIGHT,
}


class MissingFieldsError(ValueError):
    def __init__(self, fields: list[str]):
        super().__init__("missing required fields: " + ", ".join(fields))
        self.fields = fields


@dataclass(frozen=True)
class InvalidCard:
    """What :func:`fields_from_header` gives for a required field whose card is out of
    the field's range: :func:`resolve_metadata` refuses it unless the event gives the
    field."""

    field: str
    keyword: str
    value: Any

    def error(self) -> OutOfRangeError:
        refused = out_of_range(self.field, self.value, f"header card {self.keyword}")
        assert refused is not None  # made only for values out of range
        return refused


def parse_frame_type(value: Any) -> FrameType | None:
    """Map IMAGETYP spellings (``DARK``, ``Dark Frame``, ``OFFSET``, ``Light``...) to a type."""
    if value is None:
        return None
    words = str(value).strip().lower().replace("_", " ").replace("'", " ").replace('"', " ").split()
    for word in words:
        if word in _FRAME_TYPE_WORDS:
            return _FRAME_TYPE_WORDS[word]
    return None


def _numeric(value: Any) -> int | float | None:
    """A card's value as a number (maybe not finite, an integer maybe huge), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _number(value: Any) -> float | None:
    """A card's value as a finite float, or None."""
    number = _numeric(value)
    try:
        number = float(number) if number is not None else None
    except OverflowError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first(header: Mapping[str, Any], *keys: str) -> Any:
    return _first_card(header, *keys)[1]


def _first_card(header: Mapping[str, Any], *keys: str) -> tuple[str, Any]:
    for key in keys:
        if key in header and header[key] is not None and header[key] != "":
            return key, header[key]
    return keys[0], None


def _ranged(
    field: str, header: Mapping[str, Any], *keys: str, required: bool = False
) -> float | InvalidCard | None:
    """The field's number from the first of its cards; out of the field's range, absent
    (an optional field) or an :class:`InvalidCard` (a required one)."""
    keyword, value = _first_card(header, *keys)
    number = _numeric(value)
    if number is None:
        return None
    if out_of_range(field, number) is None:
        return float(number)
    return InvalidCard(field, keyword, number) if required else None


def _pixels(field: str, header: Mapping[str, Any], keyword: str) -> int | InvalidCard | None:
    size = _ranged(field, header, keyword, required=True)
    return int(size) if isinstance(size, float) else size


_BINNING = re.compile(r"[1-9][0-9]*x[1-9][0-9]*\Z")


def fields_from_header(header: Mapping[str, Any]) -> dict[str, Any]:
    """The §2 fields a FITS header provides (absent keywords are simply left out)."""
    xbin, ybin = _number(header.get("XBINNING")), _number(header.get("YBINNING"))
    found = {
        "frame_type": parse_frame_type(header.get("IMAGETYP")),
        "camera_name": _text(header.get("INSTRUME")),
        "gain": _ranged("gain", header, "GAIN"),
        "offset": _ranged("offset", header, "OFFSET"),
        "binning": f"{int(xbin)}x{int(ybin or xbin)}" if xbin else None,
        "readout_mode": _text(header.get("READOUTM")),
        "filter": _text(header.get("FILTER")),
        "exposure_s": _ranged("exposure_s", header, "EXPTIME", "EXPOSURE", required=True),
        "temperature_c": _ranged("temperature_c", header, "CCD-TEMP"),
        "set_temperature_c": _ranged("set_temperature_c", header, "SET-TEMP"),
        "rotation_deg": _ranged("rotation_deg", header, "ROTATANG", "ROTATOR"),
        "captured_at": _timestamp(_first(header, "DATE-OBS", "DATE-UTC")),
        "width": _pixels("width", header, "NAXIS1"),
        "height": _pixels("height", header, "NAXIS2"),
    }
    return {key: value for key, value in found.items() if value is not None}


def resolve_metadata(
    event_fields: Mapping[str, Any], header_fields: Mapping[str, Any]
) -> FrameMetadata:
    """Event fields win; the header fills what the event leaves out.

    Raises MissingFieldsError naming every required field neither provides,
    :class:`~calib_core.limits.OutOfRangeError` for a number out of its range (naming the
    header card it came from, if it did) and msgspec.ValidationError for other values no
    camera produces.
    """
    merged = {k: v for k, v in header_fields.items() if v is not None}
    merged.update({k: v for k, v in event_fields.items() if v is not None})
    # Times are UTC (§2): a naive event time (e.g. "2024-05-01T22:00:00") would otherwise
    # stay naive and not compare with the aware times used everywhere else.
    captured = [_timestamp(source.get("captured_at")) for source in (event_fields, header_fields)]
    merged.pop("captured_at", None)
    if any(captured):
        merged["captured_at"] = next(c for c in captured if c is not None)
    if "frame_type" in merged:
        merged["frame_type"] = parse_frame_type(merged["frame_type"])
    missing = [name for name in REQUIRED_FIELDS if merged.get(name) is None]
    if missing:
        raise MissingFieldsError(missing)
    for value in merged.values():
        if isinstance(value, InvalidCard):
            raise value.error()
    if merged["frame_type"] in (FrameType.DARK, FrameType.BIAS):
        merged.pop("filter", None)
    known = {k: v for k, v in merged.items() if k in FrameMetadata.__struct_fields__}
    metadata = msgspec.convert(known, FrameMetadata, strict=False)
    _check_values(metadata)
    return metadata


def _check_values(metadata: FrameMetadata) -> None:
    """Values no camera produces: numbers out of range (OutOfRangeError), a binning not
    like '1x1' (msgspec.ValidationError, like a wrong type)."""
    check_fields(msgspec.structs.asdict(metadata))
    if not _BINNING.match(metadata.binning):
        raise msgspec.ValidationError(f"binning must look like '1x1' (got {metadata.binning!r})")
