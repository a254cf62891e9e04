"""Calibration settings over the fakes: defaults, partial changes, refused values named
by their field (nothing changed), bodies that are not a JSON object."""

from __future__ import annotations

import msgspec
import pytest

from calib_core.settings import CalibrationSettings
from tests.unit.gateway.harness import API, OWN, Api

DEFAULTS = msgspec.structs.asdict(CalibrationSettings())


async def settings_of(api: Api, observatory_id: str) -> dict:
    return await api.ok("GET", f"{API}/settings/{observatory_id}")


async def put_settings(api: Api, observatory_id: str, **changes) -> dict:
    return await api.ok("PUT", f"{API}/settings/{observatory_id}", json=changes)


async def test_defaults_until_changed_then_partial_changes(api):
    observatory_id = await api.observatory()
    assert await settings_of(api, observatory_id) == DEFAULTS
    changed = await put_settings(
        api,
        observatory_id,
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
    assert await settings_of(api, observatory_id) == expected
    await put_settings(api, observatory_id, camera_type="CCD")
    assert await settings_of(api, observatory_id) == {**expected, "camera_type": "CCD"}


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"min_frames_for_master": 2}, "min_frames_for_master", "an integer from 3 to 100"),
        ({"min_frames_for_master": 10.5}, "min_frames_for_master", "an integer from 3 to 100"),
        ({"min_frames_for_master": {"$gt": 1}}, "min_frames_for_master", "an integer from 3"),
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
async def test_a_refused_value_is_a_422_naming_the_field_and_changes_nothing(
    api, changes, field, allowed
):
    observatory_id = await api.observatory()
    before = await put_settings(api, observatory_id, min_frames_for_master=7)
    response = await api.put(f"{API}/settings/{observatory_id}", json=changes)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_setting" and body["field"] == field
    assert field in body["detail"] and allowed in body["detail"]
    assert await settings_of(api, observatory_id) == before


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"{not json", "invalid JSON: "), (b"[1, 2]", "expected a JSON object of settings")],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(api, body, detail):
    observatory_id = await api.observatory()
    response = await api.put(
        f"{API}/settings/{observatory_id}",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert await settings_of(api, observatory_id) == DEFAULTS


async def test_settings_of_an_unknown_observatory_are_not_found(api):
    assert (await api.get(f"{API}/settings/no-such-observatory")).status_code == 404
    response = await api.put(
        f"{API}/settings/no-such-observatory", json={"min_frames_for_master": 3}
    )
    assert response.status_code == 404


async def test_members_read_and_managers_change_the_settings(api):
    assert (await api.get(f"{API}/settings/{OWN}", role="viewer")).status_code == 200
    assert (await api.get(f"{API}/settings/{OWN}", role="plugin")).status_code == 403
    change = {"min_frames_for_master": 10}
    assert (await api.put(f"{API}/settings/{OWN}", role="viewer", json=change)).status_code == 403
    assert (
        await api.put(f"{API}/settings/{OWN}", role="obs_admin", json=change)
    ).status_code == 200
