"""Master frame statistics and FITS output."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from calib_stack import imagestats

ROBUST_STD_PER_MAD = 1.4826
HOT_PIXEL_SIGMA = 5.0

_STANDARD_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")
_REPEATABLE_KEYWORDS = {"COMMENT", "HISTORY", ""}


def master_stats(image: np.ndarray, frame_type: str) -> dict:
    """Summary statistics of a master over its finite pixels (JSON-serialisable).

    ``robust_std`` is 1.4826 x the median absolute deviation; darks also get
    ``hot_pixels``, the number of pixels above median + 5 robust_std. With no
    finite pixel the float statistics are None. The values are numpy's
    (``np.median``, ``np.mean(dtype=float64)``, ...) bit for bit, computed by the
    :mod:`calib_stack.imagestats` kernels in a few passes without copies.
    """
    values = np.ascontiguousarray(image, dtype=np.float32)
    count, low, high, total, median = imagestats.summarize(values)
    stats: dict = {"median": None, "robust_std": None, "mean": None, "min": None, "max": None}
    if count:
        stats = {
            "median": median,
            "robust_std": ROBUST_STD_PER_MAD * imagestats.median_abs_deviation(values, median),
            "mean": total / count,
            "min": low,
            "max": high,
        }
    if frame_type.lower() == "dark":
        stats["hot_pixels"] = (
            imagestats.count_above(values, stats["median"] + HOT_PIXEL_SIGMA * stats["robust_std"])
            if count
            else 0
        )
    return stats


def write_master_fits(
    path: str | os.PathLike, image: np.ndarray, cards: Sequence[tuple[str, object, str]]
) -> None:
    """Write ``image`` as a float32 primary HDU with ``cards`` and checksums.

    Keywords that are not standard 8-character FITS keywords are written as
    HIERARCH cards; long strings continue over CONTINUE cards. The file is
    written next to ``path`` and renamed into place, so a reader never sees a
    partial master. While it writes, astropy byte-swaps ``image`` in place (and back):
    nothing may read the array meanwhile.
    """
    hdu = fits.PrimaryHDU(data=np.asarray(image, dtype=np.float32))
    for keyword, value, comment in cards:
        key = keyword.upper()
        if key in _REPEATABLE_KEYWORDS:
            hdu.header.append((key, _card_value(value), comment))
        else:
            if not _STANDARD_KEYWORD.match(key):
                key = f"HIERARCH {keyword}"
            hdu.header[key] = (_card_value(value), comment)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            hdu.writeto(file, checksum=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _card_value(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
