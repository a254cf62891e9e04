"""Frame metadata from a registration event and the FITS header keywords capture programs
write (SPEC §2; the keywords and their programs: :mod:`calib_core.dialects`).

Numbers are held to their ranges (SPEC §12, :mod:`calib_core.limits`): a header card out
of its field's range is read as absent when the field is optional, and rejects the frame,
naming the card, when the field is required and the event does not give it. A card no
field can take is read as absent: it never makes a frame unreadable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from calib_core.dialects import (
    COMBINED_COUNT,
    FRAME_TYPE_WORDS,
    MASTER_TYPE,
    READ_KEYWORDS,
    TIME_OF_DAY,
    Y_BINNING,
    keywords,
)
from calib_core.limits import OutOfRangeError, check_fields, out_of_range
from calib_core.models import FrameMetadata, FrameType

REQUIRED_FIELDS = ("frame_type", "camera_name", "exposure_s", "width", "height")


@dataclass(frozen=True)
class UnreadCard:
    """What :func:`fields_from_header` gives for a required field whose cards are there
    but say nothing it can take (``IMAGETYP = 'SNAPSHOT'``, ``EXPTIME = 'n/a'``): the
    field is missing, and the rejection names the first such card."""

    keyword: str
    value: Any


class MissingFieldsError(ValueError):
    """Required fields neither the event nor the header gives; the message names, for
    each, the keywords looked for."""

    def __init__(self, fields: list[str], unread: Mapping[str, UnreadCard] | None = None):
        unread = unread or {}
        super().__init__(
            "missing required fields: "
            + ", ".join(_looked_for(field, unread.get(field)) for field in fields)
        )
        self.fields = fields


def _looked_for(field: str, card: UnreadCard | None) -> str:
    names = keywords(field)
    listed = ", ".join(names)
    if card is not None:
        return f"{field} ({card.keyword} = {card.value!r} not understood; looked for {listed})"
    if len(names) == 1:
        return f"{field} (no {listed} in the header)"
    return f"{field} (none of {listed} in the header)"


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
    """Map a frame type card's spellings (``DARK``, ``Dark Frame``, ``OFFSET``, ``Light``,
    IRAF's ``zero`` and ``dome flat``, ``Master Dark``...) to a type; a dark flat, however
    spelled, is a dark."""
    if value is None or isinstance(value, FrameType):
        return value
    words = (word.removeprefix("master") for word in _words(value))
    kinds = [FRAME_TYPE_WORDS[word] for word in words if word in FRAME_TYPE_WORDS]
    if FrameType.DARK in kinds:
        return FrameType.DARK
    return kinds[0] if kinds else None


def names_a_master(value: Any) -> bool:
    """Whether a frame type names a master (``Master Dark``, ``MASTER BIAS``, ``masterflat``)."""
    return value is not None and any(word.startswith("master") for word in _words(value))


def master_card(header: Mapping[str, Any]) -> str | None:
    """The card showing that a file is itself a master, stacked elsewhere (``NCOMBINE = 20``,
    ``IMAGETYP = 'Master Dark'``), as ``KEYWORD = value``; None for an individual frame."""
    header = _read_cards(header)
    for keyword in COMBINED_COUNT:
        count = _number(header.get(keyword.name))
        if count is not None and count > 1:
            return f"{keyword.name} = {header[keyword.name]!r}"
    for keyword in MASTER_TYPE:
        if names_a_master(header.get(keyword.name)):
            return f"{keyword.name} = {header[keyword.name]!r}"
    return None


def _read_cards(header: Mapping[str, Any]) -> dict[str, Any]:
    """The header's cards that are read, found in one pass over its keywords (looking up
    every keyword some program writes would cost a failed lookup each)."""
    return {keyword: header[keyword] for keyword in READ_KEYWORDS.intersection(header)}


def _words(value: Any) -> list[str]:
    return re.findall(r"[a-z0-9]+", str(value).lower())


def _numeric(value: Any) -> int | float | None:
    """A card's value as a number (maybe not finite, an integer maybe huge), or None; also
    text holding one, as re-saves quote it (``'60.0'``), with a decimal comma (``'60,0'``)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and "." not in value:
        value = value.replace(",", ".")
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


def _count(value: Any) -> int | None:
    """A card's value as a whole number of at least 1 (``2``, ``2.0``, ``'2'``), or None."""
    number = _number(value)
    return int(number) if number is not None and number >= 1 and number.is_integer() else None


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


def _cards(header: Mapping[str, Any], field: str) -> list[tuple[str, Any]]:
    """The field's cards in the header, in the order they are read (an empty value is none)."""
    return [(name, header[name]) for name in keywords(field) if header.get(name) not in (None, "")]


def _first(
    header: Mapping[str, Any], field: str, read: Callable[[Any], Any]
) -> tuple[str, Any] | None:
    """The first of the field's cards that ``read`` takes, and what it reads there."""
    for keyword, value in _cards(header, field):
        found = read(value)
        if found is not None:
            return keyword, found
    return None


def _unread(header: Mapping[str, Any], field: str) -> UnreadCard | None:
    """For a required field none of whose cards could be read: the first of them."""
    cards = _cards(header, field)
    return UnreadCard(*cards[0]) if cards and field in REQUIRED_FIELDS else None


def _value(header: Mapping[str, Any], field: str, read: Callable[[Any], Any]) -> Any:
    found = _first(header, field, read)
    return found[1] if found is not None else _unread(header, field)


def _ranged(header: Mapping[str, Any], field: str) -> float | InvalidCard | UnreadCard | None:
    """The field's number from the first of its cards holding one; out of the field's
    range, absent (an optional field) or an :class:`InvalidCard` (a required one)."""
    found = _first(header, field, _numeric)
    if found is None:
        return _unread(header, field)
    keyword, number = found
    if out_of_range(field, number) is None:
        return float(number)
    return InvalidCard(field, keyword, number) if field in REQUIRED_FIELDS else None


def _pixels(header: Mapping[str, Any], field: str) -> int | InvalidCard | UnreadCard | None:
    size = _ranged(header, field)
    return int(size) if isinstance(size, float) else size


_BINNING = re.compile(r"[1-9][0-9]*x[1-9][0-9]*\Z")
#: Binning written as text: '2x2', DWARF's '2*2', older INDI drivers' '(1 x 1)', IRAF's '2 2'.
_BINNING_TEXT = re.compile(r"\(? *(\d+) *[x* ] *(\d+) *\)?", re.IGNORECASE)


def _binning_pair(value: Any) -> tuple[int, int] | None:
    count = _count(value)
    if count is not None:
        return count, count
    found = _BINNING_TEXT.fullmatch(str(value).strip())
    if found is None or int(found[1]) < 1 or int(found[2]) < 1:
        return None
    return int(found[1]), int(found[2])


def _binning(header: Mapping[str, Any]) -> str | None:
    """The first binning the header gives, as ``'XxY'``: an X binning keyword with its
    Y partner (square without one), or a text of both."""
    for keyword, value in _cards(header, "binning"):
        pair = _binning_pair(value)
        if pair is not None and keyword in Y_BINNING:
            pair = (pair[0], _count(header.get(Y_BINNING[keyword])) or pair[0])
        if pair is not None:
            return f"{pair[0]}x{pair[1]}"
    return None


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _captured_at(header: Mapping[str, Any]) -> datetime | None:
    """When the exposure started: a date and time, or a date with the time of day beside
    it (IRAF's and MaxIm DL's old ``DATE-OBS`` + ``TIME-OBS``/``UT``)."""
    clock = next(filter(None, (_text(header.get(keyword.name)) for keyword in TIME_OF_DAY)), None)

    def read(value: Any) -> datetime | None:
        if isinstance(value, str) and clock is not None and _DATE_ONLY.fullmatch(value.strip()):
            value = f"{value.strip()}T{clock}"
        return _timestamp(value)

    found = _first(header, "captured_at", read)
    return found[1] if found is not None else None


def fields_from_header(header: Mapping[str, Any]) -> dict[str, Any]:
    """The §2 fields a FITS header provides, read as the programs of
    :mod:`calib_core.dialects` write them (absent keywords are simply left out)."""
    header = _read_cards(header)
    found = {
        "frame_type": _value(header, "frame_type", parse_frame_type),
        "camera_name": _value(header, "camera_name", _text),
        "gain": _ranged(header, "gain"),
        "offset": _ranged(header, "offset"),
        "binning": _binning(header),
        "readout_mode": _value(header, "readout_mode", _text),
        "filter": _value(header, "filter", _text),
        "exposure_s": _ranged(header, "exposure_s"),
        "temperature_c": _ranged(header, "temperature_c"),
        "set_temperature_c": _ranged(header, "set_temperature_c"),
        "rotation_deg": _ranged(header, "rotation_deg"),
        "captured_at": _captured_at(header),
        "width": _pixels(header, "width"),
        "height": _pixels(header, "height"),
    }
    return {key: value for key, value in found.items() if value is not None}


def resolve_metadata(
    event_fields: Mapping[str, Any], header_fields: Mapping[str, Any]
) -> FrameMetadata:
    """Event fields win; the header fills what the event leaves out.

    Raises MissingFieldsError naming every required field neither provides (and the
    header keywords looked for),
    :class:`~calib_core.limits.OutOfRangeError` for a number out of its range (naming the
    header card it came from, if it did) and msgspec.ValidationError for other values no
    camera produces.
    """
    merged = {k: v for k, v in header_fields.items() if v is not None}
    merged.update({k: v for k, v in event_fields.items() if v is not None})
    unread = {k: v for k, v in merged.items() if isinstance(v, UnreadCard)}
    for name in unread:
        del merged[name]
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
        raise MissingFieldsError(missing, unread)
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
