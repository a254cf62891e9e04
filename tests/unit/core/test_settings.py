"""SPEC §3: calibration settings, their defaults and validation."""

from __future__ import annotations

import copy
import math

import pytest

from calib_core.models import FrameType
from calib_core.settings import (
    RULES,
    CalibrationSettings,
    SettingsError,
    apply_changes,
    settings_from_document,
)

SPEC_DEFAULTS = {
    "min_frames_for_master": 10,
    "camera_type": "CMOS",
    "stacking_method": "sigma_clip",
    "sigma_clip_value": 3.0,
    "sigma_clip_iterations": 5,
    "temperature_tolerance_c": 2.0,
    "dark_max_age_days": 30,
    "flat_max_age_days": 7,
    "bias_max_age_days": 90,
    "individual_frame_retention_days": 30,
    "master_retention_days": 180,
    "rotation_matching": "ignore",
    "rotation_tolerance_deg": 1.0,
    "quality_gates_enabled": True,
    "gate_sigma": 5.0,
    "flat_median_min_fraction": 0.02,
    "flat_median_max_fraction": 0.9,
    "flat_saturated_max_fraction": 0.001,
}

# name -> (kind, low, high, just below low, just above high, range text in the message)
RANGES = {
    "min_frames_for_master": (int, 3, 100, 2, 101, "from 3 to 100"),
    "sigma_clip_value": (float, 0.5, 10.0, 0.49, 10.01, "from 0.5 to 10.0"),
    "sigma_clip_iterations": (int, 1, 20, 0, 21, "from 1 to 20"),
    "temperature_tolerance_c": (float, 0.1, 20.0, 0.09, 20.01, "from 0.1 to 20.0"),
    "dark_max_age_days": (int, 1, 3650, 0, 3651, "from 1 to 3650"),
    "flat_max_age_days": (int, 1, 3650, 0, 3651, "from 1 to 3650"),
    "bias_max_age_days": (int, 1, 3650, 0, 3651, "from 1 to 3650"),
    "individual_frame_retention_days": (int, 1, 3650, 0, 3651, "from 1 to 3650"),
    "master_retention_days": (int, 1, 3650, 0, 3651, "from 1 to 3650"),
    "rotation_tolerance_deg": (float, 0.0, 180.0, -0.01, 180.01, "from 0.0 to 180.0"),
    "gate_sigma": (float, 1.0, 1000.0, 0.99, 1000.01, "from 1.0 to 1000.0"),
    "flat_median_min_fraction": (float, 0.0, 0.45, -0.01, 0.46, "from 0.0 to 0.45"),
    "flat_median_max_fraction": (float, 0.5, 1.0, 0.49, 1.01, "from 0.5 to 1.0"),
    "flat_saturated_max_fraction": (float, 0.0, 1.0, -0.01, 1.01, "from 0.0 to 1.0"),
}

FLAGS = ("quality_gates_enabled",)

CHOICES = {
    "camera_type": ("CMOS", "CCD"),
    "stacking_method": ("mean", "median", "sigma_clip"),
    "rotation_matching": ("ignore", "preferred", "required"),
}

INT_FIELDS = [name for name, spec in RANGES.items() if spec[0] is int]


def test_defaults_are_the_spec_defaults():
    settings = CalibrationSettings()
    for name, value in SPEC_DEFAULTS.items():
        assert getattr(settings, name) == value, name
        assert type(getattr(settings, name)) is type(value), name


def test_rules_cover_exactly_the_settings():
    assert set(RULES) == set(SPEC_DEFAULTS) == set(CalibrationSettings.__struct_fields__)
    assert set(RANGES) | set(CHOICES) | set(FLAGS) == set(SPEC_DEFAULTS)


@pytest.mark.parametrize("bad", [1, 0, "true", None])
def test_flags_take_only_true_or_false(bad):
    assert apply_changes(CalibrationSettings(), {"quality_gates_enabled": False}) == (
        CalibrationSettings(quality_gates_enabled=False)
    )
    with pytest.raises(SettingsError) as caught:
        apply_changes(CalibrationSettings(), {"quality_gates_enabled": bad})
    assert "quality_gates_enabled must be true or false" in str(caught.value)


@pytest.mark.parametrize("name", sorted(RANGES))
def test_range_boundaries_are_accepted(name):
    kind, low, high, *_ = RANGES[name]
    for value in (low, high):
        updated = apply_changes(CalibrationSettings(), {name: value})
        assert getattr(updated, name) == value
        assert type(getattr(updated, name)) is kind


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("side", ["below", "above"])
def test_just_outside_the_range_is_refused(name, side):
    kind, low, high, below, above, range_text = RANGES[name]
    value = below if side == "below" else above
    with pytest.raises(SettingsError) as caught:
        apply_changes(CalibrationSettings(), {name: value})
    assert caught.value.field == name
    message = str(caught.value)
    assert name in message
    assert range_text in message
    assert ("an integer" if kind is int else "a number") in message


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_choices_accept_each_option_and_refuse_others(name):
    for option in CHOICES[name]:
        assert getattr(apply_changes(CalibrationSettings(), {name: option}), name) == option
    for bad in (
        CHOICES[name][0].lower() if CHOICES[name][0].isupper() else CHOICES[name][0].upper(),
        "other",
        1,
        None,
        "",
    ):
        with pytest.raises(SettingsError) as caught:
            apply_changes(CalibrationSettings(), {name: bad})
        assert caught.value.field == name
        for option in CHOICES[name]:
            assert option in str(caught.value)


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("bad", [3.5, True, False, "10", None])
def test_integer_settings_refuse_fractions_booleans_and_text(name, bad):
    with pytest.raises(SettingsError) as caught:
        apply_changes(CalibrationSettings(), {name: bad})
    assert caught.value.field == name
    assert "integer" in str(caught.value)


def test_integer_settings_accept_a_whole_float_as_an_integer():
    updated = apply_changes(CalibrationSettings(), {"min_frames_for_master": 12.0})
    assert updated.min_frames_for_master == 12
    assert type(updated.min_frames_for_master) is int


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_with_a_settings_error(name, bad):
    with pytest.raises(SettingsError) as caught:
        apply_changes(CalibrationSettings(), {name: bad})
    assert caught.value.field == name


@pytest.mark.parametrize("name", [n for n, s in RANGES.items() if s[0] is float])
def test_float_settings_refuse_booleans_and_text_but_take_integers(name):
    for bad in (True, "1.0", None):
        with pytest.raises(SettingsError):
            apply_changes(CalibrationSettings(), {name: bad})
    low = RANGES[name][1]
    value = math.ceil(low) if math.ceil(low) <= RANGES[name][2] else low
    updated = apply_changes(CalibrationSettings(), {name: int(value)})
    assert getattr(updated, name) == value
    assert type(getattr(updated, name)) is float


def test_unknown_field_is_refused():
    with pytest.raises(SettingsError) as caught:
        apply_changes(CalibrationSettings(), {"min_frames": 5})
    assert caught.value.field == "min_frames"
    assert "unknown" in str(caught.value)


def test_apply_changes_applies_several_fields_and_keeps_the_rest():
    current = CalibrationSettings()
    updated = apply_changes(current, {"camera_type": "CCD", "min_frames_for_master": 5})
    assert updated.camera_type == "CCD"
    assert updated.min_frames_for_master == 5
    assert updated.dark_max_age_days == 30
    assert current.camera_type == "CMOS" and current.min_frames_for_master == 10


def test_apply_changes_leaves_the_input_unchanged_on_error():
    current = CalibrationSettings(min_frames_for_master=7, camera_type="CCD")
    before = copy.deepcopy(current)
    with pytest.raises(SettingsError) as caught:
        apply_changes(current, {"min_frames_for_master": 20, "sigma_clip_value": 99.0})
    assert caught.value.field == "sigma_clip_value"
    assert current == before
    assert current.min_frames_for_master == 7


def test_apply_changes_returns_a_new_object():
    current = CalibrationSettings()
    updated = apply_changes(current, {})
    assert updated == current
    assert updated is not current


def test_settings_from_document_over_defaults_ignoring_unknown_keys():
    settings = settings_from_document(
        {
            "_id": "obs-1",
            "observatory_id": "obs-1",
            "camera_type": "CCD",
            "retired_setting": 3,
            "min_frames_for_master": 4,
        }
    )
    assert settings.camera_type == "CCD"
    assert settings.min_frames_for_master == 4
    assert settings.stacking_method == "sigma_clip"


@pytest.mark.parametrize("document", [None, {}])
def test_settings_from_empty_document_are_defaults(document):
    assert settings_from_document(document) == CalibrationSettings()


def test_max_age_days_per_type():
    settings = CalibrationSettings(dark_max_age_days=11, flat_max_age_days=12, bias_max_age_days=13)
    assert settings.max_age_days(FrameType.DARK) == 11
    assert settings.max_age_days("flat") == 12
    assert settings.max_age_days(FrameType.BIAS) == 13


def test_method_params():
    assert CalibrationSettings(sigma_clip_value=2.5, sigma_clip_iterations=4).method_params() == {
        "sigma": 2.5,
        "iterations": 4,
    }
    assert CalibrationSettings(stacking_method="mean").method_params() == {}
    assert CalibrationSettings(stacking_method="median").method_params() == {}
