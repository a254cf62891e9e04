"""A frame file's layout, FITS or XISF, told by the file's first bytes (its signature),
never by its name: :mod:`calib_core.fitsheader` or :mod:`calib_core.xisfheader` reads it.

Pure: bytes in, layout out; :func:`read_image_layout` reads only through a file its
caller has open.
"""

from __future__ import annotations

from calib_core import fitsheader
from calib_core.fitsheader import HeaderIncompleteError, ImageLayout, SeekableFile
from calib_core.limits import ImageLimits
from calib_core.xisfheader import PREAMBLE, InvalidXisfError, XisfLayout, xisf_layout

#: What every XISF signature starts with (a version other than 1.0 is named, and refused).
_XISF = b"XISF"

FrameLayout = ImageLayout | XisfLayout


def kind_of(prefix: bytes) -> str:
    """``'XISF'`` or ``'FITS'``: the format a file starting with ``prefix`` is read as."""
    return "XISF" if prefix.startswith(_XISF) else "FITS"


def image_layout(prefix: bytes, limits: ImageLimits | None = None) -> FrameLayout:
    """The layout of the frame file that starts with ``prefix``: as
    :func:`calib_core.fitsheader.image_layout` for FITS (and anything not XISF),
    :func:`calib_core.xisfheader.xisf_layout` for XISF, with the same errors."""
    if kind_of(prefix) == "XISF":
        return xisf_layout(prefix, limits)
    return fitsheader.image_layout(prefix, limits)


def read_image_layout(file: SeekableFile, limits: ImageLimits | None = None) -> FrameLayout:
    """The layout of the frame file the caller has open (see
    :func:`calib_core.fitsheader.read_image_layout`): an XISF file's header is read in
    one piece once its first 16 bytes give its length (within ``limits``). Raises
    :class:`~calib_core.fitsheader.InvalidFitsError` (or its XISF kind) also when the
    file ends inside its header or before the end of its image's data."""
    file.seek(0)
    head = file.read(PREAMBLE)
    if kind_of(head) != "XISF":
        return fitsheader.read_image_layout(file, limits=limits)
    size = file.seek(0, 2)
    try:
        layout = xisf_layout(head, limits)
    except HeaderIncompleteError as error:
        file.seek(0)
        prefix = file.read(error.needed)  # no more than the file holds
        if len(prefix) < error.needed:
            raise InvalidXisfError("the file ends inside its XISF header") from error
        layout = xisf_layout(prefix, limits)
    if size < layout.needed:
        raise InvalidXisfError(
            f"truncated: the image needs {layout.needed} bytes, the file has {size}"
        )
    return layout
