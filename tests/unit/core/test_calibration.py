"""SPEC §7: which masters calibrate a light, its status, warnings and the cache signature."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_core.calibration import (
    CACHE_FAILED,
    CACHE_READY,
    CacheEntry,
    calibration_cards,
    light_status,
    plan_calibration,
)
from calib_core.models import CalibrationStatus, MasterStatus
from calib_core.settings import CalibrationSettings
from tests.unit.core.factories import NOW, frame, master

CMOS = CalibrationSettings()
CCD = CalibrationSettings(camera_type="CCD")


def light(**overrides):
    return frame("light", **overrides)


def plan(light_frame, masters, settings=CMOS):
    return plan_calibration(light_frame, masters, settings, NOW)


def entry(p, status=CACHE_READY, error=None):
    return CacheEntry(
        id=p.light_id,
        observatory_id="obs-1",
        signature=p.signature,
        status=status,
        masters=p.masters,
        warnings=p.warnings,
        created_at=NOW,
        error=error,
    )


def test_cmos_uses_the_dark_of_the_lights_exposure_and_the_flat_of_its_filter():
    dark60, dark30 = master("dark", exposure_s=60.0), master("dark", exposure_s=30.0)
    flat_l, flat_r = master("flat", filter="L"), master("flat", filter="R")
    bias = master("bias")
    p = plan(light(exposure_s=60.0, filter="L"), [dark30, dark60, flat_r, flat_l, bias])
    assert p.status == CalibrationStatus.CALIBRATED
    assert p.masters == {"dark": dark60.id, "flat": flat_l.id}
    assert p.warnings == []


def test_ccd_uses_bias_and_a_dark_rate_of_any_exposure():
    bias, dark, flat = master("bias"), master("dark", exposure_s=300.0), master("flat")
    p = plan(light(exposure_s=60.0), [bias, dark, flat], CCD)
    assert p.masters == {"bias": bias.id, "dark": dark.id, "flat": flat.id}
    assert p.status == CalibrationStatus.CALIBRATED


@pytest.mark.parametrize(
    ("settings", "present", "missing"),
    [
        (CMOS, [], "dark"),
        (CCD, ["dark", "flat"], "bias"),
        (CCD, ["bias", "flat"], "dark"),
    ],
)
def test_without_the_masters_to_subtract_a_light_has_no_masters(settings, present, missing):
    p = plan(light(), [master(kind) for kind in present], settings)
    assert p.status == CalibrationStatus.NO_MASTERS
    assert f"master {missing}" in p.error
    assert p.masters.keys() == {"bias", "dark", "flat"} & set(present)


def test_a_missing_flat_gives_a_dark_only_plan_with_a_warning():
    dark = master("dark")
    p = plan(light(filter="Ha"), [dark, master("flat", filter="L")])
    assert p.status == CalibrationStatus.CALIBRATED
    assert p.masters == {"dark": dark.id}
    assert any(w.startswith("missing flat") for w in p.warnings)


def test_the_newest_current_master_is_preferred():
    older = master("dark", created_at=NOW - timedelta(days=3))
    newer = master("dark", created_at=NOW - timedelta(days=1))
    superseded = master("dark", created_at=NOW, status=MasterStatus.SUPERSEDED)
    assert plan(light(), [older, superseded, newer]).dark is newer


def test_an_expired_or_overage_master_is_used_with_a_stale_warning():
    expired = master("dark", status=MasterStatus.EXPIRED, created_at=NOW - timedelta(days=2))
    p = plan(light(), [expired, master("flat")])
    assert p.dark is expired and p.status == CalibrationStatus.CALIBRATED
    assert [w for w in p.warnings if w.startswith("stale master")] == [
        f"stale master: master dark {expired.id} is expired (older than 30 days)"
    ]
    overage_flat = master("flat", created_at=NOW - timedelta(days=8))
    assert any(
        "stale master: master flat" in w for w in plan(light(), [expired, overage_flat]).warnings
    )


def test_a_temperature_more_than_half_the_tolerance_away_is_a_mismatch_warning():
    dark = master("dark", temperature_c=-10.0)
    flat = master("flat", temperature_c=-10.0)
    assert plan(light(temperature_c=-11.0), [dark, flat]).warnings == []
    warned = plan(light(temperature_c=-11.5), [dark, flat]).warnings
    assert len(warned) == 2 and all(w.startswith("temperature mismatch") for w in warned)
    assert plan(light(temperature_c=-12.5), [dark, flat]).status == CalibrationStatus.NO_MASTERS


def test_bias_temperature_is_never_a_mismatch():
    p = plan(
        light(temperature_c=-10.0),
        [master("bias", temperature_c=5.0), master("dark"), master("flat")],
        CCD,
    )
    assert p.warnings == []


def test_a_preferred_rotation_falls_back_to_another_flat_with_a_warning():
    settings = CalibrationSettings(rotation_matching="preferred", rotation_tolerance_deg=1.0)
    flat = master("flat", rotation_deg=90.0, settings=settings)
    p = plan(light(rotation_deg=0.0), [master("dark"), flat], settings)
    assert p.flat is flat
    assert any(w.startswith("rotation mismatch") for w in p.warnings)
    required = CalibrationSettings(rotation_matching="required")
    assert plan(light(rotation_deg=0.0), [master("dark"), flat], required).flat is None


def test_a_master_of_another_size_fails_the_calibration():
    p = plan(light(width=64, height=48), [master("dark", width=128, height=96)])
    assert p.status == CalibrationStatus.CAL_FAILED
    assert "128x96" in p.error and "64x48" in p.error


def test_the_signature_changes_with_the_masters_and_the_warnings():
    dark = master("dark")
    target = light()
    base = plan(target, [dark])
    assert plan(target, [dark]).signature == base.signature
    assert plan(target, [dark, master("flat")]).signature != base.signature
    newer = master("dark", created_at=NOW)
    assert plan(target, [dark, newer]).signature != base.signature
    expired = master("dark", id=dark.id, status=MasterStatus.EXPIRED)
    assert plan(target, [expired]).signature != base.signature


def test_a_failed_computation_for_the_same_plan_makes_the_light_cal_failed():
    p = plan(light(), [master("dark")])
    assert light_status(p, None) == (CalibrationStatus.CALIBRATED, None)
    assert light_status(p, entry(p)) == (CalibrationStatus.CALIBRATED, None)
    failed = entry(p, CACHE_FAILED, "calibration failed: truncated")
    assert light_status(p, failed) == (
        CalibrationStatus.CAL_FAILED,
        "calibration failed: truncated",
    )
    replanned = plan(light(id=p.light_id), [master("dark", created_at=NOW)])
    assert light_status(replanned, failed) == (CalibrationStatus.CALIBRATED, None)


def test_every_warning_and_error_is_ascii_for_fits_headers():
    settings = CalibrationSettings(rotation_matching="preferred")
    masters = [
        master("dark", status=MasterStatus.EXPIRED, temperature_c=-8.6),
        master("flat", filter="L", rotation_deg=45.0, temperature_c=-8.6, settings=settings),
    ]
    p = plan(light(temperature_c=-10.0, rotation_deg=0.0), masters, settings)
    assert len(p.warnings) == 4  # stale dark, two temperature mismatches, rotation mismatch
    none = plan(light(), [], settings)
    for text in [*p.warnings, none.error]:
        text.encode("ascii")


def test_the_header_names_the_masters_and_the_warnings():
    dark = master("dark")
    p = plan(light(), [dark])
    cards = {k: v for k, v, _ in calibration_cards(p, NOW)}
    assert cards["CALDARK"] == dark.id
    assert "CALFLAT" not in cards and "CALBIAS" not in cards
    assert cards["CALNWARN"] == 1 and cards["CALWRN01"].startswith("missing flat")
    assert cards["HISTORY"] == "calib: calibrated = light - dark"
    ccd = plan(light(), [master("bias"), master("dark"), master("flat")], CCD)
    ccd_cards = {k: v for k, v, _ in calibration_cards(ccd, NOW)}
    assert (
        ccd_cards["HISTORY"] == "calib: calibrated = (light - bias - dark_rate * exposure) / flat"
    )
    assert ccd_cards["CALNWARN"] == 0


def test_only_lights_are_planned():
    with pytest.raises(ValueError, match="not a light"):
        plan(frame("dark"), [])
