"""Frame metadata from a registration event and N.I.N.A. FITS header keywords (SPEC §2)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

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


def parse_frame_type(value: Any) -> FrameType | None:
    """Map IMAGETYP spellings (``DARK``, ``Dark Frame``, ``OFFSET``, ``Light``...) to a type."""
    if value is None:
        return None
    words = str(value).strip().lower().replace("_", " ").replace("'", " ").replace('"', " ").split()
    for word in words:
        if word in _FRAME_TYPE_WORDS:
            return _FRAME_TYPE_WORDS[word]
    return None


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


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
    for key in keys:
        if key in header and header[key] is not None and header[key] != "":
            return header[key]
    return None


_BINNING = re.compile(r"[1-9][0-9]*x[1-9][0-9]*\Z")


def fields_from_header(header: Mapping[str, Any]) -> dict[str, Any]:
    """The §2 fields a FITS header provides (absent keywords are simply left out)."""
    xbin, ybin = _number(header.get("XBINNING")), _number(header.get("YBINNING"))
    width, height = _number(header.get("NAXIS1")), _number(header.get("NAXIS2"))
    found = {
        "frame_type": parse_frame_type(header.get("IMAGETYP")),
        "camera_name": _text(header.get("INSTRUME")),
        "gain": _number(header.get("GAIN")),
        "offset": _number(header.get("OFFSET")),
        "binning": f"{int(xbin)}x{int(ybin or xbin)}" if xbin else None,
        "readout_mode": _text(header.get("READOUTM")),
        "filter": _text(header.get("FILTER")),
        "exposure_s": _number(_first(header, "EXPTIME", "EXPOSURE")),
        "temperature_c": _number(header.get("CCD-TEMP")),
        "set_temperature_c": _number(header.get("SET-TEMP")),
        "rotation_deg": _number(_first(header, "ROTATANG", "ROTATOR")),
        "captured_at": _timestamp(_first(header, "DATE-OBS", "DATE-UTC")),
        "width": int(width) if width else None,
        "height": int(height) if height else None,
    }
    return {key: value for key, value in found.items() if value is not None}


def resolve_metadata(
    event_fields: Mapping[str, Any], header_fields: Mapping[str, Any]
) -> FrameMetadata:
    """Event fields win; the header fills what the event leaves out.

    Raises MissingFieldsError naming every required field neither provides.
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
    if merged["frame_type"] in (FrameType.DARK, FrameType.BIAS):
        merged.pop("filter", None)
    known = {k: v for k, v in merged.items() if k in FrameMetadata.__struct_fields__}
    metadata = msgspec.convert(known, FrameMetadata, strict=False)
    _check_values(metadata)
    return metadata


def _check_values(metadata: FrameMetadata) -> None:
    """Values no camera produces (msgspec.ValidationError, like a wrong type)."""
    for name in ("width", "height"):
        if getattr(metadata, name) <= 0:
            raise msgspec.ValidationError(
                f"{name} must be a positive integer (got {getattr(metadata, name)})"
            )
    if not 0 <= metadata.exposure_s < float("inf"):
        raise msgspec.ValidationError(
            f"exposure_s must be zero or more seconds (got {metadata.exposure_s})"
        )
    if not _BINNING.match(metadata.binning):
        raise msgspec.ValidationError(f"binning must look like '1x1' (got {metadata.binning!r})")
