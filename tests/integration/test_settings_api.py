"""Calibration settings per observatory (SPEC §3) through the real gateway, and their
effect on the decisions the registry and the sweep take afterwards."""

from __future__ import annotations

import msgspec
import pytest

from calib_core.settings import CalibrationSettings
from tests.integration.registry_helpers import (
    API,
    frame_bytes,
    jobs,
    put_settings,
    register_all,
    wait_registered,
)
from tests.support.system import wait_for

DEFAULTS = msgspec.structs.asdict(CalibrationSettings())


def settings_of(admin, observatory_id: str) -> dict:
    response = admin.get(f"{API}/settings/{observatory_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_defaults_until_changed_then_partial_changes(admin, observatory):
    assert settings_of(admin, observatory) == DEFAULTS
    changed = put_settings(
        admin,
        observatory,
        min_frames_for_master=3,
        rotation_matching="required",
        temperature_tolerance_c=0.5,
    )
    expected = {
        **DEFAULTS,
        "min_frames_for_master": 3,
        "rotation_matching": "required",
        "temperature_tolerance_c": 0.5,
    }
    assert changed == expected
    assert settings_of(admin, observatory) == expected
    put_settings(admin, observatory, camera_type="CCD")
    assert settings_of(admin, observatory) == {**expected, "camera_type": "CCD"}


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"min_frames_for_master": 2}, "min_frames_for_master", "an integer from 3 to 100"),
        ({"min_frames_for_master": 10.5}, "min_frames_for_master", "an integer from 3 to 100"),
        ({"sigma_clip_value": 10.01}, "sigma_clip_value", "a number from 0.5 to 10.0"),
        ({"temperature_tolerance_c": "2"}, "temperature_tolerance_c", "a number from 0.1 to 20.0"),
        ({"camera_type": "DSLR"}, "camera_type", "one of CMOS, CCD"),
        ({"rotation_tolerance_deg": -1}, "rotation_tolerance_deg", "a number from 0.0 to 180.0"),
        ({"dark_max_age_days": 3651}, "dark_max_age_days", "an integer from 1 to 3650"),
        ({"stacking_method": "average"}, "stacking_method", "one of mean, median, sigma_clip"),
        (
            {"sigma_clip_value": 2.0, "sigma_clip_iterations": 0},
            "sigma_clip_iterations",
            "an integer from 1 to 20",
        ),
        ({"flat_max_age": 7}, "flat_max_age", "unknown setting"),
    ],
)
def test_a_refused_value_is_a_422_naming_the_field_and_changes_nothing(
    changes, field, allowed, admin, observatory
):
    before = put_settings(admin, observatory, min_frames_for_master=7)
    response = admin.put(f"{API}/settings/{observatory}", json=changes)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_setting" and body["field"] == field
    assert field in body["detail"] and allowed in body["detail"]
    assert settings_of(admin, observatory) == before


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_a_400(body, admin, observatory):
    response = admin.put(
        f"{API}/settings/{observatory}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert settings_of(admin, observatory) == DEFAULTS


def test_settings_of_an_unknown_observatory_are_not_found(admin):
    assert admin.get(f"{API}/settings/no-such-observatory").status_code == 404
    assert (
        admin.put(
            f"{API}/settings/no-such-observatory", json={"min_frames_for_master": 3}
        ).status_code
        == 404
    )


def test_a_lower_threshold_lets_the_sweep_stack_frames_already_there(
    admin, plugin, system, observatory
):
    register_all(plugin, observatory, [frame_bytes("bias", i, exposure_s=0.0) for i in range(3)])
    wait_registered(admin, system.config, observatory, 3)
    assert jobs(admin, observatory) == []  # 3 of the default 10

    put_settings(admin, observatory, min_frames_for_master=3)
    [job] = wait_for(lambda: jobs(admin, observatory), timeout_s=30, what="the sweep's job")
    assert job["trigger"] == "sweep" and len(job["frame_ids"]) == 3
    assert job["settings"]["min_frames_for_master"] == 3


def test_a_wider_temperature_tolerance_groups_frames_together(admin, plugin, system, observatory):
    put_settings(admin, observatory, min_frames_for_master=3)
    temperatures = [-10.0, -11.5, -13.0]  # span 3 °C: two groups at the default 2 °C
    register_all(
        plugin,
        observatory,
        [frame_bytes("dark", i, temperature_c=t) for i, t in enumerate(temperatures)],
    )
    frames = wait_registered(admin, system.config, observatory, 3)
    assert jobs(admin, observatory) == []

    put_settings(admin, observatory, temperature_tolerance_c=5.0)
    [job] = wait_for(
        lambda: jobs(admin, observatory), timeout_s=30, what="a job for the one wide group"
    )
    assert sorted(job["frame_ids"]) == sorted(f["id"] for f in frames)
    assert job["temperature_c"] == pytest.approx(sum(temperatures) / 3)
