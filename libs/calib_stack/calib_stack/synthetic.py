"""A realistic synthetic astronomy camera (CMOS, N.I.N.A.-style FITS output).

Used by the plugin simulator and by tests.  The model, all in ADU::

    raw = bias_pattern + read_noise
          + Poisson(dark_rate(T) * t + flat_field(filter) * signal)
          (+ cosmic rays), rounded and clipped to uint16

* ``bias_pattern`` -- ``bias_level_adu`` + fixed column pattern + a faint
  horizontal ramp + a little fixed per-pixel pattern.
* ``dark_rate`` -- per-pixel dark current (mildly non-uniform) plus hot pixels
  with a much higher rate; everything doubles every ``dark_doubling_c`` degrees.
* ``flat_field`` -- vignetting (off-centre, strength slightly filter-dependent),
  a faint illumination tilt, pixel response non-uniformity, dust donuts on the
  sensor window (same for every filter) and on the filter itself (per filter);
  normalised to median 1.
* ``signal`` -- for flats ``level_adu`` (the flat wizard's target level), for
  lights sky background plus Gaussian stars scaled by the filter throughput.

The fixed pattern (column pattern, hot pixels, vignetting, dust) depends only on
the camera name, ``seed`` and frame size, is derived with ``zlib.crc32`` and
``numpy.random.SeedSequence`` (so it is identical across calls and processes) and
is cached.  All per-frame randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from astropy.io import fits

from calib_core.fitsheader import is_structural

__all__ = [
    "Camera",
    "bias_frame",
    "bias_pattern",
    "dark_frame",
    "dark_rate",
    "filter_throughput",
    "fits_bytes",
    "flat_field",
    "flat_frame",
    "light_frame",
    "nina_header",
]

NINA_VERSION = "N.I.N.A. 3.1.2.9001 (x64)"
_U16_MAX = 65535

# Component ids for the fixed-pattern random streams (never reorder).
_BIAS, _DARK, _FLAT_BASE, _FLAT_FILTER = 1, 2, 3, 4


@dataclass(frozen=True)
class Camera:
    name: str = "ZWO ASI2600MM Pro"
    width: int = 256
    height: int = 192
    gain: float = 100
    offset: float = 50
    binning: str = "1x1"
    readout_mode: str | None = None
    bias_level_adu: float = 500.0
    read_noise_adu: float = 3.5
    dark_current_adu_s_at_0c: float = 0.02  # doubles about every 6 °C
    dark_doubling_c: float = 6.0
    hot_pixel_fraction: float = 5e-4  # fixed per camera (seeded by name); high dark current
    seed: int = 0  # fixed pattern (hot pixels, dust, vignetting) depends only on camera + seed
    pixel_size_um: float = 3.76  # unbinned pixel size, written as XPIXSZ/YPIXSZ

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bin_xy(self) -> tuple[int, int]:
        return _parse_binning(self.binning)


# --------------------------------------------------------------------------- helpers


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _pattern_rng(camera: Camera, component: int, *extra: int) -> np.random.Generator:
    """Deterministic generator for the fixed pattern of ``camera``."""
    entropy = [
        _crc(camera.name),
        int(camera.seed) & 0xFFFFFFFFFFFFFFFF,
        int(camera.width),
        int(camera.height),
        component,
        *extra,
    ]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _parse_binning(binning: str) -> tuple[int, int]:
    try:
        bx, by = (int(p) for p in str(binning).lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"binning must look like '1x1', got {binning!r}") from exc
    if bx < 1 or by < 1:
        raise ValueError(f"binning must be positive, got {binning!r}")
    return bx, by


def _check_camera(camera: Camera) -> None:
    if camera.width < 1 or camera.height < 1:
        raise ValueError(f"camera size must be positive, got {camera.width}x{camera.height}")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _to_u16(x: np.ndarray) -> np.ndarray:
    """Round and clip to the uint16 range (in place on ``x`` when possible)."""
    np.rint(x, out=x)
    np.clip(x, 0, _U16_MAX, out=x)
    return x.astype(np.uint16)


def _read_noise(camera: Camera, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(camera.shape, dtype=np.float32)
    noise *= np.float32(camera.read_noise_adu)
    return noise


def _shot(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson realisation of a non-negative expected count map, as float32."""
    lam = np.maximum(expected, 0, dtype=np.float64)
    return rng.poisson(lam).astype(np.float32)


def _add_cosmic_rays(img: np.ndarray, exposure_s: float, rng: np.random.Generator) -> None:
    """Add a few short cosmic-ray tracks (1-6 px, hundreds to thousands of ADU)."""
    h, w = img.shape
    # A couple per frame plus a realistic areal rate (~3.5e-9 hits / pixel / s).
    n = int(rng.poisson(2.0 + 3.5e-9 * h * w * max(exposure_s, 0.0)))
    if n == 0:
        return
    max_len = 6
    x0 = rng.uniform(0, w, n)
    y0 = rng.uniform(0, h, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    length = rng.integers(1, max_len + 1, n)
    energy = rng.uniform(300.0, 4000.0, n)
    steps = np.arange(max_len)
    xs = np.floor(x0[:, None] + np.cos(angle)[:, None] * steps).astype(np.int64)
    ys = np.floor(y0[:, None] + np.sin(angle)[:, None] * steps).astype(np.int64)
    deposit = energy[:, None] * rng.uniform(0.4, 1.0, (n, max_len))
    keep = (steps[None, :] < length[:, None]) & (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    np.add.at(img, (ys[keep], xs[keep]), deposit[keep].astype(np.float32))


# --------------------------------------------------------------------------- fixed pattern


@functools.lru_cache(maxsize=4)
def _bias_pattern(camera: Camera) -> np.ndarray:
    _check_camera(camera)
    rng = _pattern_rng(camera, _BIAS)
    h, w = camera.shape
    columns = rng.normal(0.0, 1.2, w).astype(np.float32)
    ramp = np.linspace(-1.0, 1.0, w, dtype=np.float32) * np.float32(rng.uniform(0.5, 2.0))
    pixels = rng.standard_normal((h, w), dtype=np.float32)
    pixels *= np.float32(0.6)
    pixels += columns + ramp
    pixels += np.float32(camera.bias_level_adu)
    return _readonly(pixels)


@functools.lru_cache(maxsize=4)
def _dark_rate_0c(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Dark current at 0 °C (ADU/s) and the flat indices of the hot pixels."""
    _check_camera(camera)
    rng = _pattern_rng(camera, _DARK)
    h, w = camera.shape
    npix = h * w
    # Mild pixel-to-pixel non-uniformity (gamma, mean 1).
    rate = rng.standard_gamma(12.0, (h, w), dtype=np.float32)
    rate *= np.float32(camera.dark_current_adu_s_at_0c / 12.0)
    n_hot = min(npix, int(round(camera.hot_pixel_fraction * npix)))
    hot = np.sort(rng.choice(npix, size=n_hot, replace=False)) if n_hot else np.zeros(0, np.int64)
    # Hot pixels: 25x to 1500x the base rate (log-uniform), at least 0.5 ADU/s at 0 °C.
    base = max(camera.dark_current_adu_s_at_0c, 0.02)
    hot_rate = base * 10.0 ** rng.uniform(np.log10(25.0), np.log10(1500.0), n_hot)
    rate.reshape(-1)[hot] = hot_rate.astype(np.float32)
    return _readonly(rate), _readonly(hot.astype(np.int64))


def _temperature_factor(camera: Camera, temperature_c: float) -> float:
    if temperature_c is None:
        raise ValueError("temperature_c is required to model dark current")
    return float(2.0 ** (float(temperature_c) / camera.dark_doubling_c))


def _donuts(
    field: np.ndarray,
    rng: np.random.Generator,
    count: int,
    radius_frac: tuple[float, float],
    depth: tuple[float, float],
) -> None:
    """Multiply ``field`` by ``count`` out-of-focus dust shadows (donuts), in place."""
    h, w = field.shape
    size = min(h, w)
    for _ in range(count):
        r_out = max(3.0, rng.uniform(*radius_frac) * size)
        r_in = r_out * rng.uniform(0.3, 0.45)  # central obstruction of the telescope
        d = rng.uniform(*depth)
        cx = rng.uniform(0, w)
        cy = rng.uniform(0, h)
        soft = max(0.7, 0.08 * r_out)
        reach = r_out + 6 * soft
        x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
        y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        xx = np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - cx)
        yy = np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - cy)
        r = np.sqrt(xx[None, :] ** 2 + yy[:, None] ** 2)
        outer = 1.0 / (1.0 + np.exp((r - np.float32(r_out)) / np.float32(soft)))
        inner = 1.0 / (1.0 + np.exp((r - np.float32(r_in)) / np.float32(soft)))
        shadow = np.float32(d) * (outer - np.float32(0.7) * inner)
        field[y0:y1, x0:x1] *= 1.0 - shadow


@functools.lru_cache(maxsize=2)
def _flat_base(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(vignetting, everything else that is the same for every filter)."""
    _check_camera(camera)
    rng = _pattern_rng(camera, _FLAT_BASE)
    h, w = camera.shape
    half_diag = 0.5 * float(np.hypot(w, h))
    cx = 0.5 * w + rng.normal(0.0, 0.03) * w
    cy = 0.5 * h + rng.normal(0.0, 0.03) * h
    xx = (np.arange(w, dtype=np.float32) + np.float32(0.5 - cx)) / np.float32(half_diag)
    yy = (np.arange(h, dtype=np.float32) + np.float32(0.5 - cy)) / np.float32(half_diag)
    # cos^4-like falloff: ~20-30 % darker in the corners than in the centre.
    corner = rng.uniform(0.70, 0.80)
    r0_sq = np.float32(1.0 / (corner**-0.5 - 1.0))
    vig = xx[None, :] ** 2 + yy[:, None] ** 2
    vig /= r0_sq
    vig += np.float32(1.0)
    vig = np.float32(1.0) / (vig * vig)

    # Faint illumination tilt of the flat panel, pixel response non-uniformity.
    gx, gy = rng.uniform(-0.015, 0.015, 2)
    rest = rng.standard_normal((h, w), dtype=np.float32)
    rest *= np.float32(0.004)
    rest += np.float32(1.0)
    rest *= (np.float32(1.0) + np.float32(gx) * xx)[None, :]
    rest *= (np.float32(1.0) + np.float32(gy) * yy)[:, None]
    # Dust on the sensor window: small, fairly dark donuts, identical for all filters.
    _donuts(rest, rng, int(rng.integers(3, 7)), (0.025, 0.06), (0.03, 0.10))
    return _readonly(vig.astype(np.float32, copy=False)), _readonly(rest)


def _filter_key(filter_name: str | None) -> str:
    return "" if filter_name is None else str(filter_name).strip()


@functools.lru_cache(maxsize=6)
def _flat_field(camera: Camera, filter_key: str) -> np.ndarray:
    vig, rest = _flat_base(camera)
    rng = _pattern_rng(camera, _FLAT_FILTER, _crc(filter_key.upper()))
    # Vignetting strength varies a little with wavelength.
    k = np.float32(rng.uniform(0.9, 1.1))
    field = np.power(vig, k)
    field *= rest
    # Dust on the filter: bigger and fainter donuts, different for every filter.
    if filter_key:
        _donuts(field, rng, int(rng.integers(1, 4)), (0.06, 0.12), (0.015, 0.05))
    field /= np.float32(np.median(field))
    return _readonly(field.astype(np.float32, copy=False))


_THROUGHPUT = {
    "": 1.0,
    "L": 1.0,
    "LUM": 1.0,
    "LUMINANCE": 1.0,
    "CLEAR": 1.0,
    "C": 1.0,
    "NONE": 1.0,
    "R": 0.32,
    "RED": 0.32,
    "G": 0.36,
    "GREEN": 0.36,
    "B": 0.30,
    "BLUE": 0.30,
    "HA": 0.035,
    "H-ALPHA": 0.035,
    "HALPHA": 0.035,
    "H": 0.035,
    "OIII": 0.03,
    "O3": 0.03,
    "O": 0.03,
    "SII": 0.025,
    "S2": 0.025,
    "S": 0.025,
}


def filter_throughput(filter_name: str | None) -> float:
    """Relative throughput of a filter (luminance = 1); unknown names get a stable value."""
    key = _filter_key(filter_name).upper()
    if key in _THROUGHPUT:
        return _THROUGHPUT[key]
    return 0.1 + 0.8 * (_crc(key) % 1000) / 1000.0


# --------------------------------------------------------------------------- truth


def bias_pattern(camera: Camera) -> np.ndarray:
    """The true bias level per pixel (ADU), float32 (a fresh copy)."""
    return _bias_pattern(camera).copy()


def dark_rate(camera: Camera, temperature_c: float) -> np.ndarray:
    """The true dark current in ADU/s per pixel (incl. hot pixels), float32."""
    rate0, _ = _dark_rate_0c(camera)
    return rate0 * np.float32(_temperature_factor(camera, temperature_c))


def hot_pixels(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the camera's hot pixels (fixed pattern)."""
    _, hot = _dark_rate_0c(camera)
    return np.unravel_index(hot, camera.shape)


def flat_field(camera: Camera, filter_name: str | None) -> np.ndarray:
    """The true normalised (median 1) illumination pattern through ``filter_name``, float32."""
    return _flat_field(camera, _filter_key(filter_name)).copy()


# --------------------------------------------------------------------------- frames


def bias_frame(camera: Camera, *, rng: np.random.Generator) -> np.ndarray:
    """A bias frame: offset level + fixed column pattern + read noise (uint16)."""
    img = _read_noise(camera, rng)
    img += _bias_pattern(camera)
    return _to_u16(img)


def dark_frame(
    camera: Camera,
    *,
    exposure_s: float,
    temperature_c: float,
    rng: np.random.Generator,
    cosmic_rays: bool = True,
) -> np.ndarray:
    """A dark: bias + Poisson dark current (incl. hot pixels) + a few cosmic rays (uint16)."""
    if exposure_s < 0:
        raise ValueError("exposure_s must be >= 0")
    expected = dark_rate(camera, temperature_c)
    expected *= np.float32(exposure_s)
    img = _shot(expected, rng)
    img += _bias_pattern(camera)
    img += _read_noise(camera, rng)
    if cosmic_rays and exposure_s > 0:
        _add_cosmic_rays(img, exposure_s, rng)
    return _to_u16(img)


def flat_frame(
    camera: Camera,
    *,
    filter_name: str | None,
    exposure_s: float,
    temperature_c: float,
    rng: np.random.Generator,
    level_adu: float = 25000.0,
) -> np.ndarray:
    """A flat: bias + dark + ``level_adu`` * flat_field with shot noise (uint16).

    ``level_adu`` is the median illumination above bias and dark (what N.I.N.A.'s
    flat wizard aims for, whatever the filter); the filter changes the pattern
    (vignetting strength, dust on the filter), not the level.
    """
    if exposure_s < 0:
        raise ValueError("exposure_s must be >= 0")
    expected = _flat_field(camera, _filter_key(filter_name)) * np.float32(level_adu)
    expected += dark_rate(camera, temperature_c) * np.float32(exposure_s)
    img = _shot(expected, rng)
    img += _bias_pattern(camera)
    img += _read_noise(camera, rng)
    return _to_u16(img)


def light_frame(
    camera: Camera,
    *,
    filter_name: str | None,
    exposure_s: float,
    temperature_c: float,
    rng: np.random.Generator,
    sky_adu_s: float = 2.0,
    n_stars: int = 40,
    cosmic_rays: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A light frame and its truth.

    Returns ``(raw, truth)``: ``raw`` is the uint16 frame; ``truth`` is the float32
    sky + star signal in ADU over the exposure, before flat-field, dark and bias, so
    ``(raw - bias_pattern - dark_rate * t) / flat_field ≈ truth`` (within noise,
    except where saturated).  ``sky_adu_s`` is the broadband (luminance) sky rate;
    sky and stars are scaled by :func:`filter_throughput`.
    """
    if exposure_s < 0:
        raise ValueError("exposure_s must be >= 0")
    h, w = camera.shape
    tp = filter_throughput(filter_name)
    t = float(exposure_s)

    # Sky: uniform background with a faint light-pollution gradient.
    gx, gy = rng.uniform(-0.05, 0.05, 2)
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)
    truth = np.empty((h, w), dtype=np.float32)
    truth[...] = np.float32(1.0) + np.float32(gx) * xs[None, :] + np.float32(gy) * ys[:, None]
    truth *= np.float32(sky_adu_s * tp * t)

    # Stars: Gaussian PSFs, fluxes spread over two decades.
    if n_stars > 0 and t > 0:
        fwhm = rng.uniform(2.2, 3.6)
        sigma = fwhm / 2.3548
        half = int(np.ceil(4 * sigma))
        offs = np.arange(-half, half + 1)
        sx = rng.uniform(0, w, n_stars)
        sy = rng.uniform(0, h, n_stars)
        flux = 10.0 ** rng.uniform(1.5, 3.5, n_stars) * tp * t  # ADU over the exposure
        ix = np.floor(sx).astype(np.int64)[:, None, None] + offs[None, None, :]
        iy = np.floor(sy).astype(np.int64)[:, None, None] + offs[None, :, None]
        dx = ix + 0.5 - sx[:, None, None]
        dy = iy + 0.5 - sy[:, None, None]
        psf = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        psf /= psf.sum(axis=(1, 2), keepdims=True)
        vals = psf * flux[:, None, None]
        iy, ix = np.broadcast_arrays(iy, ix)
        keep = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        np.add.at(truth, (iy[keep], ix[keep]), vals[keep].astype(np.float32))

    expected = truth * _flat_field(camera, _filter_key(filter_name))
    expected += dark_rate(camera, temperature_c) * np.float32(t)
    img = _shot(expected, rng)
    img += _bias_pattern(camera)
    img += _read_noise(camera, rng)
    if cosmic_rays and t > 0:
        _add_cosmic_rays(img, t, rng)
    return _to_u16(img), truth


# --------------------------------------------------------------------------- FITS

_IMAGETYP = {
    "light": "LIGHT",
    "dark": "DARK",
    "flat": "FLAT",
    "bias": "BIAS",
    "darkflat": "DARKFLAT",
    "snapshot": "SNAPSHOT",
}


def _num(value: float) -> int | float:
    """Integers as N.I.N.A. writes them (GAIN 100, not 100.0)."""
    f = float(value)
    return int(f) if f.is_integer() else f


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _iso_ms(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def nina_header(
    *,
    frame_type: str,
    camera: Camera,
    exposure_s: float,
    temperature_c: float | None,
    set_temperature_c: float | None = None,
    filter_name: str | None = None,
    rotation_deg: float | None = None,
    captured_at: datetime,
    observatory: str | Mapping | None = None,
    object_name: str | None = None,
    telescope: str = "Sky-Watcher Esprit 100ED",
) -> fits.Header:
    """A FITS header with the keywords N.I.N.A. 3.x writes, in N.I.N.A.'s order.

    ``frame_type`` is ``light``/``dark``/``flat``/``bias``/``darkflat`` (any case).
    ``captured_at`` is the exposure start; naive datetimes are taken as UTC.
    ``observatory`` is a name (written as OBSERVAT) or a mapping with optional
    ``name``, ``latitude``, ``longitude``, ``elevation`` (SITELAT/SITELONG/SITEELEV).
    Structural keywords (SIMPLE, BITPIX, NAXIS*, BZERO) are added by :func:`fits_bytes`.
    """
    ftype = _IMAGETYP.get(str(frame_type).strip().lower())
    if ftype is None:
        raise ValueError(f"unknown frame_type {frame_type!r}")
    bx, by = camera.bin_xy
    utc = _utc(captured_at)
    local = captured_at if captured_at.tzinfo is not None else utc

    hdr = fits.Header()
    hdr["IMAGETYP"] = (ftype, "Type of exposure")
    hdr["EXPOSURE"] = (float(exposure_s), "[s] Exposure duration")
    hdr["EXPTIME"] = (float(exposure_s), "[s] Exposure duration")
    hdr["DATE-LOC"] = (_iso_ms(local), "Time of observation (local)")
    hdr["DATE-OBS"] = (_iso_ms(utc), "Time of observation (UTC)")
    hdr["XBINNING"] = (bx, "X axis binning factor")
    hdr["YBINNING"] = (by, "Y axis binning factor")
    hdr["GAIN"] = (_num(camera.gain), "Sensor gain")
    if camera.offset is not None:
        hdr["OFFSET"] = (_num(camera.offset), "Sensor gain offset")
    hdr["XPIXSZ"] = (camera.pixel_size_um * bx, "[um] Pixel X axis size")
    hdr["YPIXSZ"] = (camera.pixel_size_um * by, "[um] Pixel Y axis size")
    hdr["INSTRUME"] = (camera.name, "Imaging instrument name")
    if set_temperature_c is not None:
        hdr["SET-TEMP"] = (float(set_temperature_c), "[degC] CCD temperature setpoint")
    if temperature_c is not None:
        hdr["CCD-TEMP"] = (float(temperature_c), "[degC] CCD temperature")
    if camera.readout_mode is not None:
        hdr["READOUTM"] = (camera.readout_mode, "Sensor readout mode")
    hdr["USBLIMIT"] = (40, "Camera-specific USB setting")
    hdr["TELESCOP"] = (telescope, "Name of telescope")
    hdr["FOCALLEN"] = (550.0, "[mm] Focal length")
    hdr["FOCRATIO"] = (5.5, "Focal ratio")
    if isinstance(observatory, Mapping):
        if observatory.get("name") is not None:
            hdr["OBSERVAT"] = (str(observatory["name"]), "Observatory")
        for key, kw, comment in (
            ("elevation", "SITEELEV", "[m] Observation site elevation"),
            ("latitude", "SITELAT", "[deg] Observation site latitude"),
            ("longitude", "SITELONG", "[deg] Observation site longitude"),
        ):
            if observatory.get(key) is not None:
                hdr[kw] = (float(observatory[key]), comment)
    elif observatory is not None:
        hdr["OBSERVAT"] = (str(observatory), "Observatory")
    if ftype == "LIGHT":
        hdr["OBJECT"] = (object_name or "M 31", "Name of the object of interest")
    elif object_name:
        hdr["OBJECT"] = (object_name, "Name of the object of interest")
    if filter_name is not None and ftype in ("LIGHT", "FLAT"):
        hdr["FWHEEL"] = ("ZWO Filter Wheel", "Filter Wheel name")
        hdr["FILTER"] = (str(filter_name), "Active filter name")
    if rotation_deg is not None:
        hdr["ROTNAME"] = ("Pegasus Falcon", "Rotator equipment name")
        hdr["ROTATOR"] = (float(rotation_deg), "[deg] Mechanical rotator angle")
        hdr["ROTATANG"] = (float(rotation_deg), "[deg] Mechanical rotator angle")
    hdr["ROWORDER"] = ("TOP-DOWN", "FITS Image Orientation")
    hdr["EQUINOX"] = (2000.0, "Equinox of celestial coordinate system")
    hdr["SWCREATE"] = (NINA_VERSION, "Software that created this file")
    return hdr


def fits_bytes(data: np.ndarray, header: fits.Header | Mapping | None) -> bytes:
    """A complete single-HDU FITS file, laid out like N.I.N.A.'s own writer.

    ``data`` (height x width) is written as BITPIX=16 with BZERO=32768 (no BSCALE),
    big-endian; non-uint16 input is rounded and clipped to the uint16 range.
    Structural keywords in ``header`` are ignored (they are derived from ``data``).
    """
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"data must be 2-D, got shape {arr.shape}")
    if arr.dtype != np.uint16:
        arr = _to_u16(np.array(arr, dtype=np.float64))
    h, w = arr.shape

    cards = [
        fits.Card("SIMPLE", True, "C# FITS"),
        fits.Card("BITPIX", 16, ""),
        fits.Card("NAXIS", 2, "Dimensionality"),
        fits.Card("NAXIS1", w, ""),
        fits.Card("NAXIS2", h, ""),
        fits.Card("BZERO", 32768, ""),
        fits.Card("EXTEND", True, "Extensions are permitted"),
    ]
    if header is not None:
        source = header.cards if isinstance(header, fits.Header) else header.items()
        for card in source:
            if not isinstance(card, fits.Card):
                key, value = card
                card = fits.Card(key, *value) if isinstance(value, tuple) else fits.Card(key, value)
            if is_structural(card.keyword.upper()):
                continue
            cards.append(card)
    text = "".join(card.image for card in cards) + "END".ljust(80)
    text += " " * (-len(text) % 2880)

    # uint16 -> int16 with BZERO 32768 is a flip of the top bit.
    raw = (arr ^ np.uint16(0x8000)).astype(">u2", copy=False).tobytes()
    raw += b"\0" * (-len(raw) % 2880)
    return text.encode("ascii") + raw
