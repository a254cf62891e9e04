"""Where capture programs write the §2 fields: the one table of header keywords Calib
reads, each with the programs that write it (SPEC §2).

A field is read from the first of its keywords whose value it can take, so a program's
spelling never hides another's. Values are read as the programs write them: numbers
quoted by PixInsight and Siril re-saves (``GAIN = '100'``, ``EXPTIME = '60.0'``), with a
decimal comma (``'60,0'``), binning as ``2.0``, ``'2*2'``, ``'(1 x 1)'`` or ``'2 2'``, and
N.I.N.A. 1.x/2.x's unquoted text (:mod:`calib_core.fitsheader` reads it as text).
"""

from __future__ import annotations

from dataclasses import dataclass

from calib_core.models import FrameType


@dataclass(frozen=True)
class Keyword:
    name: str
    written_by: str


#: The §2 fields' keywords, in the order they are read.
FIELD_KEYWORDS: dict[str, tuple[Keyword, ...]] = {
    "frame_type": (
        Keyword(
            "IMAGETYP",
            "N.I.N.A. ('LIGHT', 'DARKFLAT'), SGP, MaxIm DL and APT ('Light Frame', 'Flat Field'),"
            " SharpCap, ASIAIR, Seestar, KStars/Ekos, IRAF ('object', 'zero', 'dome flat')",
        ),
        Keyword("FRAME", "KStars/Ekos through INDI, older files ('Light', 'Flat Field')"),
        Keyword("OBSTYPE", "IRAF/NOAO and LCO observatory headers"),
    ),
    "camera_name": (Keyword("INSTRUME", "every capture program"),),
    "gain": (
        Keyword("GAIN", "N.I.N.A., SGP, APT, SharpCap, ASIAIR, KStars/INDI, Seestar, DWARF"),
        Keyword("ISO", "SGP with a Canon DSLR (its ISO setting)"),
    ),
    "offset": (Keyword("OFFSET", "N.I.N.A., SGP, ASIAIR, KStars/INDI"),),
    "binning": (
        Keyword("XBINNING", "N.I.N.A., SGP, MaxIm DL, APT, SharpCap, ASIAIR, KStars/INDI (2.0)"),
        Keyword("CCDXBIN", "SGP"),
        Keyword("BINNING", "DWARF ('2*2'), older INDI drivers ('(1 x 1)')"),
        Keyword("CCDSUM", "IRAF/NOAO ('2 2')"),
    ),
    "readout_mode": (Keyword("READOUTM", "MaxIm DL, N.I.N.A."),),
    "filter": (Keyword("FILTER", "every capture program with a filter wheel; Seestar"),),
    "exposure_s": (
        Keyword("EXPTIME", "N.I.N.A., MaxIm DL, APT, SharpCap, ASIAIR, KStars/INDI, IRAF"),
        Keyword("EXPOSURE", "N.I.N.A., SGP (its only one), MaxIm DL"),
        Keyword("EXP", "Seestar, DWARF"),
    ),
    "temperature_c": (
        Keyword("CCD-TEMP", "N.I.N.A., SGP, MaxIm DL, APT, SharpCap, ASIAIR, KStars/INDI"),
        Keyword("DET-TEMP", "Seestar, DWARF"),
        Keyword("TEMPERAT", "SGP (as its help lists it)"),
    ),
    "set_temperature_c": (Keyword("SET-TEMP", "N.I.N.A., SGP, MaxIm DL, APT"),),
    "rotation_deg": (
        Keyword("ROTATANG", "N.I.N.A."),
        Keyword("ROTATOR", "N.I.N.A."),
    ),
    "captured_at": (
        Keyword("DATE-OBS", "every capture program (N.I.N.A. 1.x unquoted)"),
        Keyword("DATE-UTC", "SPEC §2's fallback"),
    ),
    "width": (Keyword("NAXIS1", "FITS (ZNAXIS1 of a tile-compressed image)"),),
    "height": (Keyword("NAXIS2", "FITS (ZNAXIS2 of a tile-compressed image)"),),
}

#: The Y binning written beside an X binning keyword (a lone X binning is square).
Y_BINNING = {"XBINNING": "YBINNING", "CCDXBIN": "CCDYBIN"}

#: The time of day beside a ``DATE-OBS`` that holds only the date.
TIME_OF_DAY = (
    Keyword("TIME-OBS", "IRAF, MaxIm DL ('old format')"),
    Keyword("UT", "IRAF, MaxIm DL ('old format')"),
)

#: Words of a frame type card (matched case-insensitively, word by word; a leading
#: ``master`` is dropped, as in ``'masterflat'``).
FRAME_TYPE_WORDS: dict[str, FrameType] = {
    "light": FrameType.LIGHT,  # N.I.N.A., SGP, MaxIm DL ('Light Frame'), INDI ('Light')
    "object": FrameType.LIGHT,  # IRAF
    "science": FrameType.LIGHT,
    "expose": FrameType.LIGHT,  # LCO's OBSTYPE
    "dark": FrameType.DARK,
    "darkflat": FrameType.DARK,  # N.I.N.A.: a dark at a flat's exposure
    "flatdark": FrameType.DARK,
    "flat": FrameType.FLAT,  # also MaxIm DL's and INDI's 'Flat Field', IRAF's 'dome flat'
    "skyflat": FrameType.FLAT,  # LCO
    "domeflat": FrameType.FLAT,
    "lampflat": FrameType.FLAT,  # LCO
    "bias": FrameType.BIAS,
    "offset": FrameType.BIAS,
    "zero": FrameType.BIAS,  # IRAF
}

#: Cards of a file that is itself a master: the count of frames stacked into it (more
#: than one) ...
COMBINED_COUNT = (
    Keyword("NCOMBINE", "IRAF/ccdproc, PixInsight, Calib's own masters"),
    Keyword("STACKCNT", "Siril, Seestar stacks"),
    Keyword("SNAPSHOT", "MaxIm DL, APT (SBFITSEXT: images combined)"),
)
#: ... or a type naming a master ('Master Dark', 'MASTER BIAS', 'masterflat').
MASTER_TYPE = (
    *FIELD_KEYWORDS["frame_type"],
    Keyword("CALFRAME", "Astro Pixel Processor ('MasterFlat')"),
)


#: Every keyword read from a header.
READ_KEYWORDS = frozenset(
    {k.name for listed in FIELD_KEYWORDS.values() for k in listed}
    | {k.name for k in (*TIME_OF_DAY, *COMBINED_COUNT, *MASTER_TYPE)}
    | set(Y_BINNING.values())
)

_NAMES = {field: tuple(k.name for k in listed) for field, listed in FIELD_KEYWORDS.items()}


def keywords(field: str) -> tuple[str, ...]:
    """The names of a field's keywords, in the order they are read."""
    return _NAMES[field]
