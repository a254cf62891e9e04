"""FITS access for calibration frames: header from a byte prefix, row-band reads.

Frames are 2-D images, either in the primary HDU, in the first image extension,
or tile-compressed (fpack, ``ZIMAGE = T`` binary table). Headers are parsed
from the first bytes of a file so a caller can inspect an object with a ranged
read; pixel data is read a band of rows at a time so stacking memory stays
bounded whatever the number of frames.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from astropy.io import fits

BLOCK = 2880
CARD = 80

_STRUCTURAL = re.compile(
    r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|BZERO|BSCALE|BLANK"
    r"|CHECKSUM|DATASUM|COMMENT|HISTORY|END|)$"
)
_TABLE_KEYWORD = re.compile(
    r"^(TFIELDS|THEAP|(TTYPE|TFORM|TUNIT|TNULL|TSCAL|TZERO|TDISP|TDIM|TBCOL"
    r"|TCTYP|TCUNI|TCRPX|TCRVL|TCDLT|TROT|TLMIN|TLMAX|TDMIN|TDMAX)\d+)$"
)
_COMPRESSION_KEYWORD = re.compile(
    r"^(ZIMAGE|ZCMPTYPE|ZBITPIX|ZNAXIS\d*|ZTILE\d+|ZNAME\d+|ZVAL\d+|ZQUANTIZ|ZDITHER0"
    r"|ZSIMPLE|ZTENSION|ZEXTEND|ZBLOCKED|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM|ZMASKCMP"
    r"|ZBLANK|ZSCALE|ZZERO)$"
)
_BYTES_PER_PIXEL = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}


class InvalidFitsError(ValueError):
    """The bytes or file are not a readable FITS file with a 2-D image."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = str(path) if path is not None else None


class HeaderIncompleteError(InvalidFitsError):
    """The prefix ends before the image header does; fetch at least ``needed`` bytes."""

    def __init__(self, needed: int):
        super().__init__(f"FITS header incomplete: need at least {needed} bytes")
        self.needed = needed


@dataclass(frozen=True)
class _ImageLocation:
    header: fits.Header  # image header, primary keywords merged in
    hdu_index: int
    data_offset: int  # byte offset of the HDU's data
    data_bytes: int  # unpadded size of the HDU's data (compressed table incl. heap)
    compressed: bool


def image_header(prefix: bytes) -> fits.Header:
    """Header of the first 2-D image HDU, parsed from the first bytes of a file.

    Raises :class:`HeaderIncompleteError` if ``prefix`` ends too early and
    :class:`InvalidFitsError` if it is not FITS or holds no 2-D image.
    """
    return _locate_image(prefix).header


def image_layout(prefix: bytes) -> tuple[fits.Header, int]:
    """Like :func:`image_header`, with the bytes the file needs up to the end of the
    image's data (a shorter file is truncated)."""
    location = _locate_image(prefix)
    return location.header, location.data_offset + location.data_bytes


def _locate_image(prefix: bytes) -> _ImageLocation:
    offset = 0
    index = 0
    primary: fits.Header | None = None
    while True:
        header, data_offset = _parse_header(prefix, offset, primary=index == 0)
        data_bytes = _data_bytes(header)
        if index == 0:
            primary = header
        kind = _hdu_kind(header)
        if kind is not None:
            image = _uncompressed_header(header) if kind == "compressed" else header
            _check_2d(image, index)
            if index > 0:
                image = _merge_primary(image, primary)
            return _ImageLocation(image, index, data_offset, data_bytes, kind == "compressed")
        offset = data_offset + _padded(data_bytes)
        index += 1


def _parse_header(prefix: bytes, offset: int, *, primary: bool) -> tuple[fits.Header, int]:
    """Parse the header starting at ``offset``; return it and its data offset."""
    first_card = b"SIMPLE  =" if primary else b"XTENSION="
    if not first_card.startswith(prefix[offset : offset + len(first_card)]):
        if primary:
            raise InvalidFitsError("not a FITS file (does not start with SIMPLE)")
        raise InvalidFitsError(f"no 2-D image (no extension header at byte {offset})")
    end = offset
    while True:
        if len(prefix) < end + BLOCK:
            raise HeaderIncompleteError(end + BLOCK)
        block = prefix[end : end + BLOCK]
        end += BLOCK
        if any(block[i : i + 8] == b"END     " for i in range(0, BLOCK, CARD)):
            break
    try:
        text = prefix[offset:end].decode("ascii")
        header = fits.Header.fromstring(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidFitsError(f"malformed FITS header: {exc}") from exc
    return header, end


def _int_keyword(header: fits.Header, keyword: str, default: int | None = None) -> int:
    value = header.get(keyword, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFitsError(f"malformed FITS header: {keyword} = {value!r}")
    return value


def _data_bytes(header: fits.Header) -> int:
    naxis = _int_keyword(header, "NAXIS")
    if naxis == 0:
        return 0
    bitpix = _int_keyword(header, "BITPIX")
    if bitpix not in _BYTES_PER_PIXEL:
        raise InvalidFitsError(f"malformed FITS header: BITPIX = {bitpix}")
    elements = 1
    for axis in range(1, naxis + 1):
        elements *= _int_keyword(header, f"NAXIS{axis}")
    pcount = _int_keyword(header, "PCOUNT", 0)
    gcount = _int_keyword(header, "GCOUNT", 1)
    return _BYTES_PER_PIXEL[bitpix] * gcount * (pcount + elements)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _hdu_kind(header: fits.Header) -> str | None:
    """'image' or 'compressed' if the HDU holds an image with >= 2 axes, else None."""
    xtension = str(header.get("XTENSION", "")).strip()
    if xtension == "BINTABLE" and header.get("ZIMAGE") is True:
        return "compressed" if _int_keyword(header, "ZNAXIS") >= 2 else None
    if "SIMPLE" in header or xtension == "IMAGE":
        return "image" if _int_keyword(header, "NAXIS") >= 2 else None
    return None


def _check_2d(header: fits.Header, index: int) -> None:
    naxis = _int_keyword(header, "NAXIS")
    sizes = [_int_keyword(header, f"NAXIS{axis}") for axis in range(1, naxis + 1)]
    if sizes[0] < 1 or sizes[1] < 1 or any(size != 1 for size in sizes[2:]):
        raise InvalidFitsError(f"HDU {index} is not a 2-D image (axes {sizes})")


def _uncompressed_header(table: fits.Header) -> fits.Header:
    """Image header of a tile-compressed HDU (ZBITPIX -> BITPIX, ZNAXISn -> NAXISn...)."""
    naxis = _int_keyword(table, "ZNAXIS")
    image = fits.Header()
    image["XTENSION"] = "IMAGE"
    image["BITPIX"] = _int_keyword(table, "ZBITPIX")
    image["NAXIS"] = naxis
    for axis in range(1, naxis + 1):
        image[f"NAXIS{axis}"] = _int_keyword(table, f"ZNAXIS{axis}")
    image["PCOUNT"] = 0
    image["GCOUNT"] = 1
    for card in table.cards:
        keyword = card.keyword
        if (
            keyword in ("XTENSION", "BITPIX", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM")
            or re.match(r"^NAXIS\d*$", keyword)
            or _TABLE_KEYWORD.match(keyword)
            or _COMPRESSION_KEYWORD.match(keyword)
            or (keyword == "EXTNAME" and card.value == "COMPRESSED_IMAGE")
        ):
            continue
        image.append(card)
    if image["BITPIX"] > 0 and "BLANK" not in image and "ZBLANK" in table:
        image["BLANK"] = table["ZBLANK"]
    return image


def _merge_primary(image: fits.Header, primary: fits.Header) -> fits.Header:
    """Add the primary header's keywords that the image extension lacks."""
    merged = image.copy()
    for card in primary.cards:
        if not _STRUCTURAL.match(card.keyword) and card.keyword not in merged:
            merged.append(card)
    return merged


class FitsImage:
    """An open FITS frame whose pixels are read a band of rows at a time.

    Use ``with FitsImage.open(path) as image: image.read_rows(y0, y1)``.
    Uncompressed data is read straight from the file (no memory map, so pages
    of frames already stacked do not count against the process); compressed
    data decompresses only the tiles covering the requested rows.
    """

    def __init__(self, path: Path, location: _ImageLocation, file: BinaryIO | None):
        self.path = path
        self.header = location.header
        self._location = location
        self._file = file
        self.shape: tuple[int, int] = (self.header["NAXIS2"], self.header["NAXIS1"])
        bitpix = self.header["BITPIX"]
        self._bzero = float(self.header.get("BZERO", 0.0))
        self._bscale = float(self.header.get("BSCALE", 1.0))
        blank = self.header.get("BLANK") if bitpix > 0 else None
        self._blank = blank if isinstance(blank, int) and not isinstance(blank, bool) else None
        self.dtype = _logical_dtype(bitpix, self._bscale, self._bzero)
        self._raw_dtype = np.dtype(f">{'f' if bitpix < 0 else 'i'}{abs(bitpix) // 8}")
        if bitpix == 8:
            self._raw_dtype = np.dtype(np.uint8)

    @classmethod
    def open(cls, path: str | os.PathLike) -> FitsImage:
        path = Path(path)
        try:
            file = path.open("rb")
        except OSError as exc:
            raise InvalidFitsError(f"cannot open: {exc.strerror or exc}", path) from exc
        try:
            location = _locate_in_file(file, path)
            size = os.fstat(file.fileno()).st_size
            if size < location.data_offset + location.data_bytes:
                raise InvalidFitsError(
                    f"truncated: image data needs {location.data_offset + location.data_bytes}"
                    f" bytes, file has {size}",
                    path,
                )
            if location.compressed:
                file.close()
                file = None
            return cls(path, location, file)
        except BaseException:
            if file is not None:
                file.close()
            raise

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> FitsImage:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0`` to ``y1`` (exclusive) as float32, scaled (BZERO/BSCALE), BLANK -> NaN."""
        out = np.empty((max(y1 - y0, 0), self.shape[1]), dtype=np.float32)
        self.read_rows_into(y0, y1, out)
        return out

    def read_rows_into(self, y0: int, y1: int, out: np.ndarray) -> None:
        """:meth:`read_rows` written into ``out`` (float32, rows x width), in one pass
        without a float copy when the stored values are exact in float32 (integer
        frames, float32 masters): a stack reads every frame band this way."""
        height, width = self.shape
        if not 0 <= y0 <= y1 <= height:
            raise ValueError(f"row range [{y0}, {y1}) outside image of height {height}")
        try:
            raw = (
                self._read_compressed(y0, y1)
                if self._location.compressed
                else self._read_raw(y0, y1)
            )
        except InvalidFitsError:
            raise
        except Exception as exc:  # astropy/zlib/OS errors on a damaged file
            raise InvalidFitsError(f"cannot read image rows {y0}-{y1}: {exc}", self.path) from exc
        if self._exact_in_float32(raw) and self._bscale == 1.0 and self._blank is None:
            np.add(raw, np.float32(self._bzero), out=out, casting="unsafe")
        else:
            out[...] = self._to_float32(raw)

    def _exact_in_float32(self, raw: np.ndarray) -> bool:
        small_type = raw.dtype.itemsize <= 2 or (raw.dtype.kind == "f" and raw.dtype.itemsize == 4)
        return small_type and self._bscale == 1.0 and self._bzero.is_integer()

    def _read_raw(self, y0: int, y1: int) -> np.ndarray:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        width = self.shape[1]
        raw = np.empty((y1 - y0, width), dtype=self._raw_dtype)
        self._file.seek(self._location.data_offset + y0 * width * raw.itemsize)
        if self._file.readinto(raw.reshape(-1).view(np.uint8)) != raw.nbytes:
            raise InvalidFitsError("truncated image data", self.path)
        return raw

    def _read_compressed(self, y0: int, y1: int) -> np.ndarray:
        # Opened per call: astropy memory-maps the compressed table, and keeping
        # it open would let every decompressed band's pages accumulate in RSS.
        with fits.open(self.path, memmap=True, do_not_scale_image_data=True) as hdul:
            section = hdul[self._location.hdu_index].section
            extra = (0,) * (self.header["NAXIS"] - 2)
            return np.asarray(section[extra + (slice(y0, y1), slice(None))])

    def _to_float32(self, raw: np.ndarray) -> np.ndarray:
        work = raw.astype(np.float32 if self._exact_in_float32(raw) else np.float64)
        if self._bscale != 1.0:
            work *= self._bscale
        if self._bzero != 0.0:
            work += self._bzero
        if self._blank is not None:
            work[raw == self._blank] = np.nan
        return work if work.dtype == np.float32 else work.astype(np.float32)


def _logical_dtype(bitpix: int, bscale: float, bzero: float) -> np.dtype:
    """The dtype astropy would present for this BITPIX/BSCALE/BZERO."""
    if bscale == 1.0 and bitpix > 8 and bzero == 2 ** (bitpix - 1):
        return np.dtype(f"uint{bitpix}")
    if bscale != 1.0 or bzero != 0.0:
        return np.dtype(np.float64 if bitpix in (32, 64, -64) else np.float32)
    return np.dtype(
        {8: "uint8", 16: "int16", 32: "int32", 64: "int64"}.get(bitpix, f"float{-bitpix}")
    )


def _locate_in_file(file: BinaryIO, path: Path) -> _ImageLocation:
    prefix = b""
    want = 4 * BLOCK
    while True:
        chunk = file.read(want - len(prefix))
        prefix += chunk
        try:
            return _locate_image(prefix)
        except HeaderIncompleteError as exc:
            if not chunk or len(prefix) < want:  # end of file
                raise InvalidFitsError("no 2-D image found (file ends early)", path) from exc
            want = max(exc.needed, 2 * len(prefix))
        except InvalidFitsError as exc:
            raise InvalidFitsError(str(exc), path) from exc


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The whole image as float32 (see :meth:`FitsImage.read_rows`)."""
    with FitsImage.open(path) as image:
        return image.read_rows(0, image.shape[0])
