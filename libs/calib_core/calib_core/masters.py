"""What a master is made of: its record and its FITS provenance header (SPEC §5)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from statistics import fmean
from typing import Any, TypeVar

import msgspec

from calib_core import __version__
from calib_core.grouping import config_key, configuration, mean_angle
from calib_core.models import Frame, FrameMetadata, FrameType, MasterStatus, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.stacking_rules import stacks_dark_rate


def master_id_for_job(job_id: str) -> str:
    """Masters of jobs get an id derived from the job, so a repeated job makes one master."""
    return f"m{job_id}"


def master_storage_key(observatory_id: str, master_id: str) -> str:
    return f"masters/{observatory_id}/{master_id}.fits"


def preview_storage_key(observatory_id: str, frame_id: str) -> str:
    return f"previews/{observatory_id}/{frame_id}.png"


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def temperature_stats(components: Sequence[Frame]) -> dict[str, float | None]:
    """Lowest, mean and highest sensor temperature of a master's sources (None if unknown)."""
    temperatures = [f.temperature_c for f in components if f.temperature_c is not None]
    return {
        "temperature_min_c": min(temperatures, default=None),
        "temperature_mean_c": _mean(temperatures),
        "temperature_max_c": max(temperatures, default=None),
    }


def components_digest(frame_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(frame_ids)).encode()).hexdigest()


def build_master(
    job: StackJob,
    components: Sequence[Frame],
    *,
    width: int,
    height: int,
    size_bytes: int,
    sha256: str,
    stats: dict[str, Any],
    now: datetime,
) -> Frame:
    """The master record for a finished job, before it becomes active."""
    settings = CalibrationSettings(**job.settings)
    first = components[0]
    temperatures = [f.temperature_c for f in components if f.temperature_c is not None]
    master_id = master_id_for_job(job.id)
    params = settings.method_params()
    if stacks_dark_rate(job.frame_type, settings):
        params["unit"] = "adu/s"
    return Frame(
        id=master_id,
        observatory_id=job.observatory_id,
        frame_type=job.frame_type,
        camera_name=first.camera_name,
        gain=first.gain,
        offset=first.offset,
        binning=first.binning,
        readout_mode=first.readout_mode,
        filter=first.filter if job.frame_type == FrameType.FLAT else None,
        exposure_s=float(
            job.configuration.get("exposure_s") or fmean(f.exposure_s for f in components)
        ),
        temperature_c=_mean(temperatures),
        temperature_min_c=min(temperatures) if temperatures else None,
        temperature_max_c=max(temperatures) if temperatures else None,
        set_temperature_c=_mean([f.set_temperature_c for f in components]),
        rotation_deg=mean_angle(f.rotation_deg for f in components),
        captured_at=max((f.captured_at for f in components if f.captured_at), default=None),
        width=width,
        height=height,
        storage_key=master_storage_key(job.observatory_id, master_id),
        preview_key=preview_storage_key(job.observatory_id, master_id),
        size_bytes=size_bytes,
        sha256=sha256,
        registered_at=now,
        created_at=now,
        is_master=True,
        config_key=job.config_key,
        status=MasterStatus.ACTIVE,
        n_frames=len(components),
        method=settings.stacking_method,
        method_params=params,
        job_id=job.id,
        stats=stats,
        components=[f.id for f in components],
    )


T = TypeVar("T", int, float, str)


def _card(header: Mapping[str, Any], keyword: str, kind: Callable[[Any], T]) -> T | None:
    """A header card's value as ``kind``; None when absent, empty or not convertible."""
    value = header.get(keyword)
    try:
        return kind(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def uploaded_master(
    metadata: FrameMetadata,
    header: Mapping[str, Any],
    *,
    master_id: str,
    observatory_id: str,
    size_bytes: int,
    sha256: str,
    settings: CalibrationSettings,
    now: datetime,
) -> Frame:
    """The record of a master made elsewhere and uploaded: active at once, without
    components; how it was made (``NCOMBINE``, ``CALMETH``, ``TEMPMIN``, ``TEMPMAX``) as
    far as its header tells."""
    return Frame(
        **msgspec.structs.asdict(metadata),
        id=master_id,
        observatory_id=observatory_id,
        storage_key=master_storage_key(observatory_id, master_id),
        size_bytes=size_bytes,
        sha256=sha256,
        registered_at=now,
        created_at=now,
        is_master=True,
        config_key=config_key(configuration(metadata, settings)),
        status=MasterStatus.ACTIVE,
        n_frames=_card(header, "NCOMBINE", int),
        method=_card(header, "CALMETH", str) or "uploaded",
        method_params={},
        temperature_min_c=_card(header, "TEMPMIN", float),
        temperature_max_c=_card(header, "TEMPMAX", float),
        components=[],
    )


def provenance_cards(
    job: StackJob, components: Sequence[Frame], created_at: datetime
) -> list[tuple[str, Any, str]]:
    """FITS header cards of a master: configuration, method, temperatures, sources."""
    settings = CalibrationSettings(**job.settings)
    first = components[0]
    temperatures = [f.temperature_c for f in components if f.temperature_c is not None]
    binning = (first.binning or "1x1").split("x")
    cards: list[tuple[str, Any, str]] = [
        ("IMAGETYP", f"MASTER {job.frame_type.value.upper()}", "master calibration frame"),
        ("INSTRUME", first.camera_name, "camera"),
        ("XBINNING", int(binning[0]), "binning"),
        ("YBINNING", int(binning[-1]), "binning"),
    ]
    if first.gain is not None:
        cards.append(("GAIN", first.gain, "camera gain"))
    if first.offset is not None:
        cards.append(("OFFSET", first.offset, "camera offset"))
    if first.readout_mode:
        cards.append(("READOUTM", first.readout_mode, "readout mode"))
    if job.frame_type == FrameType.FLAT and first.filter:
        cards.append(("FILTER", first.filter, "filter"))
    exposure = job.configuration.get("exposure_s") or fmean(f.exposure_s for f in components)
    cards.append(("EXPTIME", float(exposure), "[s] exposure of the sources"))
    if temperatures:
        cards += [
            ("CCD-TEMP", round(fmean(temperatures), 3), "[C] mean sensor temperature of sources"),
            ("TEMPMIN", min(temperatures), "[C] lowest source temperature"),
            ("TEMPMAX", max(temperatures), "[C] highest source temperature"),
        ]
    cards += [
        ("NCOMBINE", len(components), "number of frames combined"),
        ("CALMETH", settings.stacking_method, "combination method"),
    ]
    if settings.stacking_method == "sigma_clip":
        cards += [
            ("CLIPSIG", settings.sigma_clip_value, "sigma clipping threshold"),
            ("CLIPITER", settings.sigma_clip_iterations, "maximum clipping iterations"),
        ]
    if stacks_dark_rate(job.frame_type, settings):
        cards.append(("BUNIT", "adu/s", "dark current rate (bias subtracted)"))
    cards += [
        ("CALOBS", job.observatory_id, "observatory"),
        ("CALMSTR", master_id_for_job(job.id), "master id"),
        ("CALJOB", job.id, "stacking job id"),
        # a 64-character value leaves no room for a comment on its card
        ("SRCDIGST", components_digest([f.id for f in components]), ""),
        ("COMMENT", "SRCDIGST: sha256 of the sorted source frame ids, one per line", ""),
        ("DATE", created_at.strftime("%Y-%m-%dT%H:%M:%S"), "[UTC] creation time"),
        ("SWCREATE", f"calib {__version__}", "software"),
    ]
    cards += [
        (f"SRC{i:04d}", f.id, "source frame id") for i, f in enumerate(components[:999], start=1)
    ]
    return cards
