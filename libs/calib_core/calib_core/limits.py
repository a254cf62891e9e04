"""Limits on what crosses the trust boundary (SPEC §12): how large an image a header may
declare, and the range of every numeric §2 field, whoever sends it (an event body, a form
field, a FITS header card).

Pure: values in, a decision out. The checks of a FITS file's first bytes against
:class:`ImageLimits` are in :mod:`calib_core.fitsheader`, which reads them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_IMAGE_PIXELS = 250_000_000
DEFAULT_MAX_HEADER_BYTES = 1024 * 1024
MAX_AXES = 3


@dataclass(frozen=True)
class ImageLimits:
    """What a frame's or an uploaded master's header may declare."""

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    """``CALIB_MAX_IMAGE_PIXELS``: the image's pixel count (a tile-compressed image's
    uncompressed one, by ``ZNAXISn``)."""
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    """``CALIB_MAX_HEADER_BYTES``: the image's header must end within this many bytes of
    the file's start (nothing longer is read to judge a file)."""
    max_axes: int = MAX_AXES


@dataclass(frozen=True)
class Range:
    """Finite numbers from ``low`` to ``high`` (inclusive)."""

    low: float
    high: float

    def __contains__(self, value: object) -> bool:
        return _finite(value) and self.low <= value <= self.high  # type: ignore[operator]

    def __str__(self) -> str:
        return f"{_plain(self.low)} to {_plain(self.high)}"


#: Any finite number.
FINITE = Range(-math.inf, math.inf)

#: The numeric §2 fields and the values a camera can produce (SPEC §12).
FIELD_RANGES: dict[str, Range] = {
    "width": Range(1, 100_000),
    "height": Range(1, 100_000),
    "exposure_s": Range(0, 86_400),
    "temperature_c": Range(-273, 100),
    "set_temperature_c": Range(-273, 100),
    "gain": Range(0, 1_000_000),
    "offset": Range(0, 1_000_000),
    "rotation_deg": FINITE,
}


class OutOfRangeError(ValueError):
    """A numeric field's value is not finite or outside its range; ``what`` names where it
    was found (the field, ``form field 'gain'``, ``header card EXPTIME``...)."""

    def __init__(self, field: str, value: Any, allowed: Range, what: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.what = what or field
        if not _finite(value):
            message = f"{self.what} = {value} is not a finite number"
        elif what is not None and what != field:
            message = f"{self.what} = {value} is out of range for {field} ({allowed})"
        else:
            message = f"{self.what} = {value} is out of range ({allowed})"
        super().__init__(message)


def out_of_range(field: str, value: Any, what: str | None = None) -> OutOfRangeError | None:
    """Why ``value`` may not be ``field``'s, or None when it may (or the field has no
    range, or the value is absent)."""
    allowed = FIELD_RANGES.get(field)
    if allowed is None or value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float) or value not in allowed:
        return OutOfRangeError(field, value, allowed, what)
    return None


def check_fields(values: Mapping[str, Any], what: str = "{field}") -> None:
    """Raise :class:`OutOfRangeError` for the first numeric field of ``values`` out of its
    range; ``what`` formats where it was found from ``{field}``."""
    for field, value in values.items():
        refused = out_of_range(field, value, what.format(field=field))
        if refused is not None:
            raise refused


def _finite(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _plain(number: float) -> str:
    return str(int(number)) if math.isfinite(number) and number == int(number) else str(number)
