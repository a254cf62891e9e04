"""Which masters calibrate a light frame, with what warnings (SPEC §7): pure decisions.

CMOS: ``(light − dark) / flat``, the dark matched on exposure. CCD:
``(light − bias − dark_rate × exposure) / flat``. The dark (and on CCD the bias) is
required: without it a light is ``no_masters``. A missing flat gives a dark-only
result with a warning. The plan's ``signature`` names the masters and warnings, so a
cached calibrated file is valid exactly while the plan for its light is unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import msgspec

from calib_core.lifecycle import ExpiryState, expiry_state
from calib_core.matching import find_master
from calib_core.models import CalibrationStatus, Frame, FrameType
from calib_core.settings import CalibrationSettings
from calib_core.tolerance import angle_between

#: Warn about a temperature difference larger than this share of the tolerance.
TEMPERATURE_WARNING_SHARE = 0.5


class CalibrationPlan(msgspec.Struct, kw_only=True):
    light_id: str
    camera_type: str
    status: CalibrationStatus
    bias: Frame | None = None
    dark: Frame | None = None
    flat: Frame | None = None
    warnings: list[str] = []
    error: str | None = None

    @property
    def masters(self) -> dict[str, str]:
        """Master ids used, by type (``bias``, ``dark``, ``flat``)."""
        used = {"bias": self.bias, "dark": self.dark, "flat": self.flat}
        return {kind: m.id for kind, m in used.items() if m is not None}

    @property
    def signature(self) -> str:
        text = "\n".join(
            [
                self.camera_type,
                *(f"{k}={v}" for k, v in sorted(self.masters.items())),
                *self.warnings,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()


class CacheEntry(msgspec.Struct, kw_only=True):
    """A calibrated light in the S3 cache, or the failure to make one, for one plan."""

    id: str  # the light's id
    observatory_id: str
    signature: str
    status: str  # "ready" | "failed"
    masters: dict[str, str]
    warnings: list[str]
    created_at: datetime
    storage_key: str | None = None
    size_bytes: int | None = None
    error: str | None = None


CACHE_READY = "ready"
CACHE_FAILED = "failed"


def cache_storage_key(observatory_id: str, light_id: str, signature: str) -> str:
    """Keyed by the plan: a new plan never overwrites the object an old record names."""
    return f"calibrated/{observatory_id}/{light_id}-{signature[:16]}.fits"


def _describe_light(light: Frame, settings: CalibrationSettings) -> str:
    parts = [
        light.camera_name,
        f"gain {light.gain}",
        f"offset {light.offset}",
        f"binning {light.binning}",
    ]
    if light.readout_mode:
        parts.append(f"readout {light.readout_mode}")
    parts.append(f"{light.exposure_s:g} s")
    if light.temperature_c is not None:
        parts.append(f"{light.temperature_c:g} C +/- {settings.temperature_tolerance_c:g}")
    return ", ".join(str(p) for p in parts)


def _master_warnings(
    kind: str, master: Frame, light: Frame, settings: CalibrationSettings, now: datetime
) -> list[str]:
    warnings = []
    if expiry_state(master, settings, now) == ExpiryState.EXPIRED:
        warnings.append(
            f"stale master: master {kind} {master.id} is expired (older than "
            f"{settings.max_age_days(master.frame_type)} days)"
        )
    if (
        master.frame_type != FrameType.BIAS
        and master.temperature_c is not None
        and light.temperature_c is not None
        and abs(master.temperature_c - light.temperature_c)
        > TEMPERATURE_WARNING_SHARE * settings.temperature_tolerance_c
    ):
        warnings.append(
            f"temperature mismatch: master {kind} {master.id} at {master.temperature_c:.1f} C, "
            f"light at {light.temperature_c:.1f} C"
        )
    return warnings


def plan_calibration(
    light: Frame, masters: Sequence[Frame], settings: CalibrationSettings, now: datetime
) -> CalibrationPlan:
    """The masters that calibrate ``light`` (newest current matching ones), its status
    and the warnings a calibrated file carries (ASCII: they go into FITS headers)."""
    if light.frame_type != FrameType.LIGHT:
        raise ValueError(f"frame {light.id} is a {light.frame_type.value}, not a light")

    def find(kind: FrameType) -> Frame | None:
        return find_master(masters, frame_type=kind, target=light, settings=settings)

    ccd = settings.camera_type == "CCD"
    plan = CalibrationPlan(
        light_id=light.id,
        camera_type=settings.camera_type,
        status=CalibrationStatus.CALIBRATED,
        bias=find(FrameType.BIAS) if ccd else None,
        dark=find(FrameType.DARK),
        flat=find(FrameType.FLAT),
    )
    missing = [
        kind
        for kind, m in (("bias", plan.bias), ("dark", plan.dark))
        if m is None and (kind == "dark" or ccd)
    ]
    if missing:
        plan.status = CalibrationStatus.NO_MASTERS
        plan.error = (
            f"no current master {' or '.join(missing)} matches this light"
            f" ({_describe_light(light, settings)})"
        )
        return plan
    used = {"bias": plan.bias, "dark": plan.dark, "flat": plan.flat}
    for kind, master in used.items():
        if master is not None and (master.width, master.height) != (light.width, light.height):
            plan.status = CalibrationStatus.CAL_FAILED
            plan.error = (
                f"master {kind} {master.id} is {master.width}x{master.height}, "
                f"the light is {light.width}x{light.height}"
            )
            return plan
    for kind, master in used.items():
        if master is not None:
            plan.warnings += _master_warnings(kind, master, light, settings, now)
    if plan.flat is None:
        plan.warnings.append(
            "missing flat: no current master flat matches this light; dark-only calibration"
        )
    elif (
        settings.rotation_matching == "preferred"
        and plan.flat.rotation_deg is not None
        and light.rotation_deg is not None
        and angle_between(plan.flat.rotation_deg, light.rotation_deg)
        > settings.rotation_tolerance_deg
    ):
        plan.warnings.append(
            f"rotation mismatch: master flat {plan.flat.id} at {plan.flat.rotation_deg:.1f} deg, "
            f"light at {light.rotation_deg:.1f} deg"
        )
    return plan


def dark_scale(plan: CalibrationPlan, light: Frame) -> float:
    """What the master dark is multiplied by before it is subtracted: on CCD the master
    dark is a rate per second (the light's exposure), on CMOS a dark of the light's
    exposure (1)."""
    return light.exposure_s if plan.camera_type == "CCD" else 1.0


def flat_scale(plan: CalibrationPlan) -> float:
    """What the master flat is divided by: its median, so that dividing by it keeps the
    light's level. Masters made here are normalised to median 1; an uploaded one may not
    be. Without a flat, or a positive recorded median, 1."""
    median = (plan.flat.stats or {}).get("median") if plan.flat is not None else None
    return float(median) if isinstance(median, int | float) and median > 0 else 1.0


def calibration_cards(plan: CalibrationPlan, now: datetime) -> list[tuple[str, object, str]]:
    """FITS header cards of a calibrated light: the masters used and the warnings."""
    cards: list[tuple[str, object, str]] = [
        ("CALIBRAT", True, "calibrated by calib"),
        ("CALLIGHT", plan.light_id, "light frame id"),
        ("CALCAMT", plan.camera_type, "camera type (formula)"),
    ]
    for kind, keyword in (("bias", "CALBIAS"), ("dark", "CALDARK"), ("flat", "CALFLAT")):
        if kind in plan.masters:
            cards.append((keyword, plan.masters[kind], f"master {kind} used"))
    cards.append(("CALNWARN", len(plan.warnings), "number of calibration warnings"))
    cards += [
        (f"CALWRN{i:02d}", text, "calibration warning")
        for i, text in enumerate(plan.warnings[:99], 1)
    ]
    formula = (
        "(light - bias - dark_rate * exposure) / flat"
        if plan.camera_type == "CCD"
        else "(light - dark) / flat"
    )
    if plan.flat is None:
        formula = formula.replace(" / flat", "").strip("()")
    cards += [
        ("CALDATE", now.strftime("%Y-%m-%dT%H:%M:%S"), "[UTC] calibration time"),
        ("HISTORY", f"calib: calibrated = {formula}", ""),
    ]
    return cards


def light_status(
    plan: CalibrationPlan, entry: CacheEntry | None
) -> tuple[CalibrationStatus, str | None]:
    """A light's calibration status and error: the plan's, unless computing the
    calibrated file for this very plan failed."""
    if (
        plan.status == CalibrationStatus.CALIBRATED
        and entry is not None
        and entry.signature == plan.signature
        and entry.status == CACHE_FAILED
    ):
        return CalibrationStatus.CAL_FAILED, entry.error
    return plan.status, plan.error
