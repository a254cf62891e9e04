"""SPEC §5 supersession: which current masters a new master replaces."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_core.models import MasterStatus
from calib_core.settings import CalibrationSettings
from calib_core.supersession import superseded_by
from tests.unit.core.factories import NOW, master

DEFAULT = CalibrationSettings(temperature_tolerance_c=2.0)


def new_master(kind="dark", **overrides):
    overrides.setdefault("created_at", NOW)
    return master(kind, **overrides)


def old_master(kind="dark", days=5, **overrides):
    overrides.setdefault("created_at", NOW - timedelta(days=days))
    return master(kind, **overrides)


def ids(masters):
    return sorted(m.id for m in masters)


@pytest.mark.parametrize("status", [MasterStatus.ACTIVE, MasterStatus.EXPIRED])
def test_current_master_of_same_configuration_is_superseded(status):
    old = old_master(status=status)
    new = new_master()
    assert superseded_by(new, [old, new], DEFAULT) == [old]


def test_already_superseded_masters_are_left_alone():
    old = old_master(status=MasterStatus.SUPERSEDED)
    assert superseded_by(new_master(), [old], DEFAULT) == []


def test_temperature_within_tolerance_superseded_others_coexist():
    new = new_master(temperature_c=-10.0)
    close = old_master(temperature_c=-8.0)
    close_below = old_master(temperature_c=-12.0)
    far = old_master(temperature_c=-7.9)
    cold = old_master(temperature_c=-20.0)
    no_temp = old_master(temperature_c=None)
    result = superseded_by(new, [close, close_below, far, cold, no_temp], DEFAULT)
    assert ids(result) == ids([close, close_below])


def test_masters_without_temperature_supersede_each_other():
    new = new_master(temperature_c=None)
    old = old_master(temperature_c=None)
    other = old_master(temperature_c=-10.0)
    assert superseded_by(new, [old, other], DEFAULT) == [old]


def test_newer_master_never_superseded_by_older():
    newer = master("dark", created_at=NOW + timedelta(hours=1))
    new = new_master()
    assert superseded_by(new, [newer], DEFAULT) == []
    assert superseded_by(newer, [new], DEFAULT) == [new]


def test_same_creation_time_is_decided_by_id_one_way_only():
    a = master("dark", id="ma", created_at=NOW)
    b = master("dark", id="mb", created_at=NOW)
    assert len(superseded_by(a, [b], DEFAULT)) + len(superseded_by(b, [a], DEFAULT)) == 1


def test_a_master_does_not_supersede_itself():
    new = new_master()
    assert superseded_by(new, [new], DEFAULT) == []


def test_other_configurations_untouched():
    new = new_master(exposure_s=60.0)
    other_exposure = old_master(exposure_s=120.0)
    other_gain = old_master(gain=0.0)
    flat = old_master("flat")
    bias = old_master("bias")
    assert other_exposure.config_key != new.config_key
    assert superseded_by(new, [other_exposure, other_gain, flat, bias], DEFAULT) == []


def test_other_observatories_untouched():
    new = new_master()
    elsewhere = old_master(observatory_id="obs-2")
    assert superseded_by(new, [elsewhere], DEFAULT) == []


def test_flat_filters_are_separate_configurations():
    new = new_master("flat", filter="Ha")
    assert superseded_by(new, [old_master("flat", filter="L")], DEFAULT) == []
    same = old_master("flat", filter="Ha")
    assert superseded_by(new, [same], DEFAULT) == [same]


def test_flat_rotation_ignored_by_default():
    new = new_master("flat", rotation_deg=0.0)
    old = old_master("flat", rotation_deg=90.0)
    assert superseded_by(new, [old], DEFAULT) == [old]


@pytest.mark.parametrize("mode", ["preferred", "required"])
def test_flat_rotation_when_rotation_matters(mode):
    s = CalibrationSettings(rotation_matching=mode, rotation_tolerance_deg=1.0)
    new = new_master("flat", rotation_deg=10.0)
    same = old_master("flat", rotation_deg=10.8)
    turned = old_master("flat", rotation_deg=12.0)
    assert superseded_by(new, [same, turned], s) == [same]


def test_flat_rotation_wraps_around_360():
    s = CalibrationSettings(rotation_matching="required", rotation_tolerance_deg=1.0)
    new = new_master("flat", rotation_deg=0.3)
    old = old_master("flat", rotation_deg=359.8)
    assert superseded_by(new, [old], s) == [old]


def test_rotation_does_not_matter_for_darks():
    s = CalibrationSettings(rotation_matching="required", rotation_tolerance_deg=1.0)
    new = new_master("dark", rotation_deg=0.0)
    old = old_master("dark", rotation_deg=90.0)
    assert superseded_by(new, [old], s) == [old]


def test_masters_missing_created_at_use_registered_at():
    new = new_master()
    old = old_master(created_at=None, registered_at=NOW - timedelta(days=2))
    assert superseded_by(new, [old], DEFAULT) == [old]
    later = old_master(created_at=None, registered_at=NOW + timedelta(days=2))
    assert superseded_by(new, [later], DEFAULT) == []


def test_several_old_masters_all_replaced():
    new = new_master(temperature_c=-10.0)
    olds = [old_master(days=d, temperature_c=-10.0 + d / 10) for d in (1, 2, 3)]
    assert ids(superseded_by(new, olds, DEFAULT)) == ids(olds)
