"""SPEC §5 preprocessing and §7: which master calibrates a frame."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_core.matching import Preprocessing, find_master, preprocessing, prerequisite_type
from calib_core.models import FrameType, MasterStatus
from calib_core.settings import CalibrationSettings
from calib_core.triggers import (
    CCD_DARK_DEFERRED_REASON,
    CCD_FLAT_DEFERRED_REASON,
    FLAT_DEFERRED_REASON,
)
from tests.unit.core.factories import NOW, frame, master

CMOS = CalibrationSettings()
CCD = CalibrationSettings(camera_type="CCD")


def light(**overrides):
    return frame("light", **overrides)


def find(masters, kind, target, settings=CMOS):
    return find_master(masters, frame_type=FrameType(kind), target=target, settings=settings)


# ---- hardware ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dark", "flat", "bias"])
def test_matching_master_found(kind):
    m = master(kind)
    assert find([m], kind, light()) is m


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("camera_name", "Other Cam"),
        ("gain", 101.0),
        ("gain", None),
        ("offset", 10.0),
        ("binning", "2x2"),
        ("readout_mode", "HDR"),
    ],
)
@pytest.mark.parametrize("kind", ["dark", "flat", "bias"])
def test_hardware_must_match(kind, field, value):
    m = master(kind)
    assert find([m], kind, light(**{field: value})) is None
    assert find([m], kind, light(), CCD) is m


def test_integer_and_float_gain_are_the_same():
    m = master("dark", gain=100.0)
    assert find([m], "dark", light(gain=100)) is m


def test_only_the_requested_type():
    d, f = master("dark"), master("flat")
    assert find([d, f], "flat", light()) is f
    assert find([d, f], "dark", light()) is d
    assert find([d, f], "bias", light()) is None


def test_individual_frames_are_never_masters():
    individual = frame("dark")
    assert find([individual], "dark", light()) is None


# ---- exposure ------------------------------------------------------------------------------------


def test_cmos_dark_needs_exposure_to_the_second():
    m = master("dark", exposure_s=60.0)
    assert find([m], "dark", light(exposure_s=60.0)) is m
    assert find([m], "dark", light(exposure_s=59.6)) is m
    assert find([m], "dark", light(exposure_s=60.4)) is m
    assert find([m], "dark", light(exposure_s=61.0)) is None
    assert find([m], "dark", light(exposure_s=300.0)) is None


def test_cmos_dark_exposure_rounds_halves_up():
    m = master("dark", exposure_s=3.0)
    assert find([m], "dark", light(exposure_s=2.5)) is m
    m1 = master("dark", exposure_s=1.0)
    assert find([m1], "dark", light(exposure_s=0.5)) is m1


def test_ccd_dark_ignores_exposure():
    m = master("dark", exposure_s=1.0, settings=CCD)
    assert find([m], "dark", light(exposure_s=300.0), CCD) is m


def test_flat_and_bias_ignore_exposure():
    assert find([f := master("flat", exposure_s=2.0)], "flat", light(exposure_s=300.0)) is f
    assert find([b := master("bias", exposure_s=0.001)], "bias", light(exposure_s=300.0)) is b


# ---- temperature ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dark", "flat"])
def test_temperature_within_tolerance(kind):
    s = CalibrationSettings(temperature_tolerance_c=2.0)
    m = master(kind, temperature_c=-10.0)
    assert find([m], kind, light(temperature_c=-12.0), s) is m
    assert find([m], kind, light(temperature_c=-8.0), s) is m
    assert find([m], kind, light(temperature_c=-12.1), s) is None
    assert find([m], kind, light(temperature_c=-7.9), s) is None
    assert find([m], kind, light(temperature_c=None), s) is None


def test_temperature_tolerance_follows_setting():
    s = CalibrationSettings(temperature_tolerance_c=5.0)
    m = master("dark", temperature_c=-10.0)
    assert find([m], "dark", light(temperature_c=-14.5), s) is m


def test_bias_is_temperature_independent():
    m = master("bias", temperature_c=-10.0)
    assert find([m], "bias", light(temperature_c=25.0), CCD) is m
    assert find([m], "bias", light(temperature_c=None), CCD) is m


def test_no_temperature_matches_no_temperature():
    m = master("dark", temperature_c=None)
    assert find([m], "dark", light(temperature_c=None)) is m
    assert find([m], "dark", light(temperature_c=-10.0)) is None


def test_closest_temperature_not_required_newest_wins():
    s = CalibrationSettings(temperature_tolerance_c=2.0)
    close_old = master("dark", temperature_c=-10.0, created_at=NOW - timedelta(days=5))
    far_new = master("dark", temperature_c=-11.5, created_at=NOW - timedelta(days=1))
    assert find([close_old, far_new], "dark", light(temperature_c=-10.0), s) is far_new


# ---- filter --------------------------------------------------------------------------------------


def test_flats_need_the_filter():
    ha, l_ = master("flat", filter="Ha"), master("flat", filter="L")
    assert find([ha, l_], "flat", light(filter="Ha")) is ha
    assert find([ha, l_], "flat", light(filter="L")) is l_
    assert find([ha, l_], "flat", light(filter="OIII")) is None
    assert find([ha, l_], "flat", light(filter=None)) is None


def test_darks_ignore_the_filter():
    d = master("dark")
    assert find([d], "dark", light(filter="Ha")) is d


# ---- rotation ------------------------------------------------------------------------------------


def test_rotation_ignored():
    f = master("flat", rotation_deg=90.0)
    assert find([f], "flat", light(rotation_deg=0.0)) is f
    assert find([f], "flat", light(rotation_deg=None)) is f


def test_rotation_preferred_uses_the_closest_within_tolerance():
    s = CalibrationSettings(rotation_matching="preferred", rotation_tolerance_deg=2.0)
    near = master("flat", rotation_deg=10.5, created_at=NOW - timedelta(days=3))
    nearer = master("flat", rotation_deg=10.1, created_at=NOW - timedelta(days=4))
    far_newest = master("flat", rotation_deg=45.0, created_at=NOW - timedelta(days=1))
    assert find([near, nearer, far_newest], "flat", light(rotation_deg=10.0), s) is nearer


def test_rotation_preferred_falls_back_to_any_newest():
    s = CalibrationSettings(rotation_matching="preferred", rotation_tolerance_deg=1.0)
    old = master("flat", rotation_deg=45.0, created_at=NOW - timedelta(days=3))
    new = master("flat", rotation_deg=90.0, created_at=NOW - timedelta(days=1))
    assert find([old, new], "flat", light(rotation_deg=0.0), s) is new
    assert find([old, new], "flat", light(rotation_deg=None), s) is new


def test_rotation_required_only_within_tolerance():
    s = CalibrationSettings(rotation_matching="required", rotation_tolerance_deg=1.0)
    m = master("flat", rotation_deg=10.0)
    assert find([m], "flat", light(rotation_deg=11.0), s) is m
    assert find([m], "flat", light(rotation_deg=9.0), s) is m
    assert find([m], "flat", light(rotation_deg=11.1), s) is None
    assert find([m], "flat", light(rotation_deg=None), s) is None


def test_rotation_required_wraps_around_360():
    s = CalibrationSettings(rotation_matching="required", rotation_tolerance_deg=1.0)
    m = master("flat", rotation_deg=359.6)
    assert find([m], "flat", light(rotation_deg=0.4), s) is m
    assert find([m], "flat", light(rotation_deg=1.0), s) is None


def test_rotation_required_without_any_rotation_matches_a_master_without_one():
    s = CalibrationSettings(rotation_matching="required")
    m = master("flat", rotation_deg=None)
    assert find([m], "flat", light(rotation_deg=None), s) is m
    assert find([m], "flat", light(rotation_deg=10.0), s) is None


def test_rotation_does_not_affect_darks():
    s = CalibrationSettings(rotation_matching="required")
    d = master("dark", rotation_deg=90.0)
    assert find([d], "dark", light(rotation_deg=0.0), s) is d


# ---- status and recency --------------------------------------------------------------------------


def test_newest_current_master_preferred():
    old = master("dark", created_at=NOW - timedelta(days=10))
    new = master("dark", created_at=NOW - timedelta(days=1))
    middle = master("dark", created_at=NOW - timedelta(days=5))
    assert find([old, new, middle], "dark", light()) is new
    assert find([middle, old], "dark", light()) is middle


def test_expired_masters_still_used():
    expired = master("dark", status=MasterStatus.EXPIRED)
    assert find([expired], "dark", light()) is expired


def test_superseded_masters_never_chosen():
    superseded = master("dark", status=MasterStatus.SUPERSEDED, created_at=NOW)
    active = master("dark", created_at=NOW - timedelta(days=30))
    assert find([superseded, active], "dark", light()) is active
    assert find([superseded], "dark", light()) is None


def test_masters_without_created_at_use_registered_at():
    a = master("dark", created_at=None, registered_at=NOW - timedelta(days=3))
    b = master("dark", created_at=None, registered_at=NOW - timedelta(days=1))
    assert find([a, b], "dark", light()) is b


# ---- preprocessing target: a flat needs a dark ---------------------------------------------------


def test_flat_finds_its_dark_by_the_flat_exposure_on_cmos():
    flat = frame("flat", exposure_s=2.4, filter="Ha")
    dark2, dark60 = master("dark", exposure_s=2.0), master("dark", exposure_s=60.0)
    assert find([dark60, dark2], "dark", flat) is dark2


# ---- prerequisites -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "camera", "expected"),
    [
        (FrameType.FLAT, "CMOS", FrameType.DARK),
        (FrameType.FLAT, "CCD", FrameType.DARK),
        (FrameType.DARK, "CCD", FrameType.BIAS),
        (FrameType.DARK, "CMOS", None),
        (FrameType.BIAS, "CMOS", None),
        (FrameType.BIAS, "CCD", None),
    ],
)
def test_prerequisite_type(kind, camera, expected):
    assert prerequisite_type(kind, CalibrationSettings(camera_type=camera)) == expected


def test_preprocessing_of_each_frame_type_per_spec():
    flat = frame(FrameType.FLAT, filter="L", exposure_s=2.0)
    cmos_dark = master(FrameType.DARK, exposure_s=2.0)
    ccd_dark = master(FrameType.DARK, exposure_s=1.0)  # a rate: exposure does not matter on CCD
    bias = master(FrameType.BIAS)

    assert preprocessing(FrameType.FLAT, flat, [cmos_dark, bias], CMOS) == Preprocessing(
        subtract=cmos_dark
    )
    assert preprocessing(FrameType.FLAT, flat, [bias], CMOS) == FLAT_DEFERRED_REASON
    # CCD flats: bias subtracted as it is, the dark rate scaled by each flat's exposure
    assert preprocessing(FrameType.FLAT, flat, [ccd_dark, bias], CCD) == Preprocessing(
        subtract=bias, dark_rate=ccd_dark
    )
    assert preprocessing(FrameType.FLAT, flat, [ccd_dark], CCD) == CCD_FLAT_DEFERRED_REASON
    assert preprocessing(FrameType.FLAT, flat, [bias], CCD) == FLAT_DEFERRED_REASON

    dark = frame(FrameType.DARK, exposure_s=300.0)
    assert preprocessing(FrameType.DARK, dark, [bias], CCD) == Preprocessing(subtract=bias)
    assert preprocessing(FrameType.DARK, dark, [], CCD) == CCD_DARK_DEFERRED_REASON
    assert preprocessing(FrameType.DARK, dark, [bias], CMOS) == Preprocessing()
    assert preprocessing(FrameType.BIAS, frame(FrameType.BIAS), [], CCD) == Preprocessing()
