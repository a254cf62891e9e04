"""SPEC §7: what the master dark and flat are scaled by when a light is calibrated."""

from __future__ import annotations

import pytest

from calib_core.calibration import dark_scale, flat_scale, plan_calibration
from calib_core.settings import CalibrationSettings
from tests.unit.core.factories import NOW, frame, master

CMOS = CalibrationSettings()
CCD = CalibrationSettings(camera_type="CCD")


def plan(light, masters, settings):
    return plan_calibration(light, masters, settings, NOW)


def test_a_cmos_dark_is_of_the_lights_exposure_and_subtracted_as_it_is():
    light = frame("light", exposure_s=300.0)
    assert dark_scale(plan(light, [master("dark", exposure_s=300.0)], CMOS), light) == 1.0


def test_a_ccd_dark_is_a_rate_per_second_scaled_by_the_lights_exposure():
    light = frame("light", exposure_s=300.0)
    masters = [master("bias", exposure_s=0.0, settings=CCD), master("dark", settings=CCD)]
    assert dark_scale(plan(light, masters, CCD), light) == 300.0


@pytest.mark.parametrize(
    ("stats", "scale"),
    [
        (None, 1.0),  # a master made here: normalised to median 1
        ({"median": 1.0}, 1.0),
        ({"median": 21000.0}, 21000.0),  # an uploaded, unnormalised flat
        ({"median": 0.0}, 1.0),
        ({"median": -3.0}, 1.0),
        ({"median": "n/a"}, 1.0),
    ],
)
def test_the_flat_is_divided_by_its_median_when_it_has_a_positive_one(stats, scale):
    light = frame("light")
    masters = [master("dark"), master("flat", stats=stats)]
    assert flat_scale(plan(light, masters, CMOS)) == scale


def test_without_a_flat_nothing_is_divided():
    light = frame("light")
    assert flat_scale(plan(light, [master("dark")], CMOS)) == 1.0
