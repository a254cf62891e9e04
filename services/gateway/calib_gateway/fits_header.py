"""The image header of an uploaded FITS file, read with astropy from the spooled upload
without loading its pixels (the gateway does not depend on the numerics library)."""

from __future__ import annotations

import os
import warnings
from typing import IO

from astropy.io import fits

#: Keywords of the primary HDU not carried over to an image in an extension.
_STRUCTURAL = {
    "SIMPLE",
    "BITPIX",
    "NAXIS",
    "NAXIS1",
    "NAXIS2",
    "EXTEND",
    "BZERO",
    "BSCALE",
    "BLANK",
    "PCOUNT",
    "GCOUNT",
    "XTENSION",
    "CHECKSUM",
    "DATASUM",
    "COMMENT",
    "HISTORY",
    "",
}


class InvalidFitsUpload(ValueError):
    """The upload is not a FITS file holding a complete 2-D image."""


class _Borrowed:
    """Read access to the caller's file that astropy may "close" without closing it."""

    mode = "rb"

    def __init__(self, file: IO[bytes]):
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        """The upload is closed by its owner."""


def _size_of(file: IO[bytes]) -> int:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


def image_header(file: IO[bytes]) -> fits.Header:
    """Header of the first 2-D image (primary, extension or tile-compressed), with the
    primary HDU's keywords merged in; raises InvalidFitsUpload for anything else,
    including a file cut short before the end of the image data."""
    size = _size_of(file)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(_Borrowed(file), memmap=False, lazy_load_hdus=True, cache=False) as hdul:
                primary = hdul[0].header
                for hdu in hdul:
                    compressed = isinstance(hdu, fits.CompImageHDU)
                    if not (compressed or (hdu.is_image and hdu.header.get("NAXIS") == 2)):
                        continue
                    info = hdu.fileinfo()
                    stored = hdu._data_size if compressed else hdu.size  # noqa: SLF001 - no public name
                    if info is None or info["datLoc"] + stored > size:
                        raise InvalidFitsUpload(
                            "the file is truncated: the image data is incomplete"
                        )
                    header = hdu.header.copy()
                    if hdu is not hdul[0]:
                        for card in primary.cards:
                            if card.keyword not in _STRUCTURAL and card.keyword not in header:
                                header[card.keyword] = card.value
                    return header
    except InvalidFitsUpload:
        raise
    except Exception as error:  # noqa: BLE001 - astropy raises many kinds for bad input
        raise InvalidFitsUpload(f"not a valid FITS file: {error}") from error
    raise InvalidFitsUpload("the FITS file holds no 2-D image")
