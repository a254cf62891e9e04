"""SPEC §5: whether a queued job still has work, how its frames are combined, and the
header cards naming the masters they were corrected with."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_core.matching import Preprocessing
from calib_core.models import FrameType, JobTrigger
from calib_core.settings import CalibrationSettings
from calib_core.stacking_rules import (
    is_redundant,
    preprocessing_cards,
    stack_recipe,
    stacks_dark_rate,
)
from tests.unit.core.factories import NOW, frame, frames, job, master

SETTINGS = CalibrationSettings(min_frames_for_master=3)


@pytest.mark.parametrize("trigger", [JobTrigger.REGISTRATION, JobTrigger.SWEEP])
def test_an_automatic_job_whose_frames_a_master_claimed_meanwhile_is_redundant(trigger):
    claimed = frames(3, master_id="m-earlier")
    new = frames(2)
    automatic = job(trigger=trigger, settings_obj=SETTINGS)
    assert is_redundant(automatic, [*claimed, *new], SETTINGS)
    assert not is_redundant(automatic, [*claimed, *new, frame()], SETTINGS)  # 3 new ones


@pytest.mark.parametrize("trigger", [JobTrigger.MANUAL, JobTrigger.RETRY])
def test_a_requested_job_is_never_redundant(trigger):
    assert not is_redundant(job(trigger=trigger), frames(3, master_id="m-earlier"), SETTINGS)


def test_only_ccd_darks_stack_into_a_dark_rate():
    ccd, cmos = CalibrationSettings(camera_type="CCD"), CalibrationSettings(camera_type="CMOS")
    assert stacks_dark_rate(FrameType.DARK, ccd)
    assert not stacks_dark_rate(FrameType.DARK, cmos)
    assert not any(stacks_dark_rate(t, ccd) for t in (FrameType.BIAS, FrameType.FLAT))


def test_the_recipe_follows_the_settings():
    settings = CalibrationSettings(
        stacking_method="sigma_clip", sigma_clip_value=2.5, sigma_clip_iterations=7
    )
    recipe = stack_recipe(job("bias"), frames(3, "bias"), settings, Preprocessing())
    assert (recipe.method, recipe.sigma, recipe.maxiters) == ("sigma_clip", 2.5, 7)
    assert recipe.exposures is None and not recipe.normalise
    recipe = stack_recipe(
        job("dark"), frames(3), CalibrationSettings(stacking_method="median"), Preprocessing()
    )
    assert recipe.method == "median" and recipe.exposures is None  # CMOS darks: counts


def test_ccd_darks_are_divided_by_each_frames_exposure():
    darks = [frame("dark", exposure_s=t) for t in (120.0, 300.0)]
    ccd = CalibrationSettings(camera_type="CCD")
    recipe = stack_recipe(job("dark"), darks, ccd, Preprocessing(subtract=master("bias")))
    assert recipe.exposures == [120.0, 300.0] and not recipe.normalise


def test_flats_are_normalised_and_scale_a_dark_rate_by_their_exposure():
    flats = [frame("flat", exposure_s=t) for t in (2.0, 3.0)]
    cmos = stack_recipe(
        job("flat"), flats, CalibrationSettings(), Preprocessing(subtract=master("dark"))
    )
    assert cmos.normalise and cmos.exposures is None
    ccd = stack_recipe(
        job("flat"),
        flats,
        CalibrationSettings(camera_type="CCD"),
        Preprocessing(subtract=master("bias"), dark_rate=master("dark")),
    )
    assert ccd.normalise and ccd.exposures == [2.0, 3.0]


def test_preprocessing_cards_name_the_masters_subtracted():
    bias, dark = master("bias", id="mbias"), master("dark", id="mdark")
    assert preprocessing_cards(Preprocessing()) == []
    assert preprocessing_cards(Preprocessing(subtract=dark)) == [
        ("CALPRE", "mdark", "master dark subtracted")
    ]
    assert preprocessing_cards(Preprocessing(subtract=bias, dark_rate=dark)) == [
        ("CALPRE", "mbias", "master bias subtracted"),
        ("CALDARK", "mdark", "master dark rate x exposure subtracted"),
    ]


def test_a_masters_creation_time_falls_back_to_its_registration():
    made = master(created_at=NOW - timedelta(days=2), registered_at=NOW)
    uploaded = master(created_at=None, registered_at=NOW - timedelta(days=3))
    assert made.creation_time == NOW - timedelta(days=2)
    assert uploaded.creation_time == NOW - timedelta(days=3)
