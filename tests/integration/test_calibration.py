"""SPEC §7 against the running system: synthetic lights whose true signal is known,
calibrated with masters the real pipeline stacked, for CMOS and CCD; the S3 cache
(second request served from it, invalidated by a new master, cleared by an admin);
status and warnings on GET /frames/{id} and in the calibrated file's header."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime

import httpx
import numpy as np
from astropy.io import fits

from calib_stack import synthetic
from tests.integration.test_lifecycle import (
    API,
    DAY,
    MINUTE,
    camera,
    darks,
    frame_file,
    get_frame,
    light_file,
    light_id_for,
    put_settings,
    register,
    subject_count,
    wait_masters,
)
from tests.support.system import wait_for

N_FRAMES = 5  # per master (mean-stacked)
EXPOSURE_S = 30.0
FLAT_EXPOSURE_S = 1.0
FLAT_LEVEL_ADU = 25000.0
SKY_ADU_S = 10.0


def warm_camera(name: str) -> synthetic.Camera:
    """A camera with enough dark current (≈9 ADU in 30 s, hot pixels thousands) that
    leaving the dark out would show."""
    return dataclasses.replace(camera(name), dark_current_adu_s_at_0c=1.0)


def flats(cam, rng, now, filter_name="L"):
    return [
        frame_file(
            cam,
            "flat",
            rng=rng,
            captured_at=now - (N_FRAMES - i) * MINUTE,
            exposure_s=FLAT_EXPOSURE_S,
            filter_name=filter_name,
        )
        for i in range(N_FRAMES)
    ]


def calibrated(
    client: httpx.Client, frame_id: str, cache: str
) -> tuple[fits.Header, np.ndarray, bytes]:
    response = client.get(f"{API}/frames/{frame_id}/calibrated")
    assert response.status_code == 200, response.text
    assert response.headers["x-calibration-cache"] == cache
    assert response.headers["content-type"].startswith("application/fits")
    with fits.open(io.BytesIO(response.content)) as hdul:
        return hdul[0].header.copy(), np.asarray(hdul[0].data, dtype=np.float64), response.content


def warnings_in(header: fits.Header) -> list[str]:
    return [header[f"CALWRN{i:02d}"] for i in range(1, header["CALNWARN"] + 1)]


def assert_matches_truth(cam: synthetic.Camera, pixels: np.ndarray, truth: np.ndarray) -> None:
    """Residuals against the true signal, in units of the noise expected per pixel: the
    light's own shot and read noise plus the noise of the mean-stacked dark and flat
    masters (on CCD the bias cancels: the dark rate was made from bias-subtracted darks).
    A wrong dark, a missing or wrong flat or a bias offset would show as a shifted mean
    or an inflated spread."""
    flat = synthetic.flat_field(cam, "L").astype(np.float64)
    dark = synthetic.dark_rate(cam, -10.0).astype(np.float64) * EXPOSURE_S
    read = cam.read_noise_adu**2 + 1 / 12  # read noise and rounding to integers
    light_var = truth * flat + dark + read
    dark_master_var = (dark + read) / N_FRAMES
    flat_rel_var = (FLAT_LEVEL_ADU * flat + read) / (FLAT_LEVEL_ADU * flat) ** 2 / N_FRAMES
    sigma = np.sqrt((light_var + dark_master_var) / flat**2 + truth**2 * flat_rel_var)

    def within_noise(result: np.ndarray) -> bool:
        z = (result - truth) / sigma
        return abs(z.mean()) < 0.08 and 0.9 < z.std() < 1.1

    z = (pixels - truth) / sigma
    assert within_noise(pixels), f"residuals {z.mean():.3f} ± {z.std():.3f} sigma"
    # the test has the power to see a step left out
    assert not within_noise(pixels * flat), "not flat-fielded"
    assert not within_noise(pixels + dark / flat), "dark not subtracted"


def test_cmos_light_matches_the_truth_is_cached_and_a_new_master_invalidates_it(
    admin, plugin, observatory, system
):
    obs, cam, rng = observatory, warm_camera("Calibration CMOS"), np.random.default_rng(21)
    put_settings(admin, obs, min_frames_for_master=N_FRAMES, stacking_method="mean")
    now = datetime.now(UTC)
    register(
        plugin,
        obs,
        darks(cam, rng, now, N_FRAMES, exposure_s=EXPOSURE_S)
        + darks(cam, rng, now, N_FRAMES, exposure_s=FLAT_EXPOSURE_S)
        + flats(cam, rng, now),
    )
    wait_masters(admin, obs, 1, frame_type="flat")  # after both darks: the flat needs one
    dark = wait_masters(admin, obs, 1, frame_type="dark", exposure_s=EXPOSURE_S)[0]
    flat = wait_masters(admin, obs, 1, frame_type="flat")[0]
    light_bytes, truth = light_file(
        cam, rng=rng, captured_at=now, sky_adu_s=SKY_ADU_S, exposure_s=EXPOSURE_S
    )
    broken_bytes, _ = light_file(
        cam, rng=rng, captured_at=now, sky_adu_s=SKY_ADU_S, exposure_s=EXPOSURE_S
    )
    light_key, broken_key = register(plugin, obs, [light_bytes, broken_bytes])
    light, broken = light_id_for(admin, obs, light_key), light_id_for(admin, obs, broken_key)

    view = get_frame(admin, light)
    assert view["calibration_status"] == "calibrated"
    assert view["calibration_masters"] == {"dark": dark["id"], "flat": flat["id"]}
    assert view["calibration_warnings"] == []

    header, pixels, content = calibrated(admin, light, cache="miss")
    assert (header["CALDARK"], header["CALFLAT"], header["CALNWARN"]) == (dark["id"], flat["id"], 0)
    assert header["BITPIX"] == -32 and header["CALLIGHT"] == light and header["IMAGETYP"] == "LIGHT"
    assert "calib: calibrated = (light - dark) / flat" in str(header["HISTORY"])
    assert_matches_truth(cam, pixels, truth)

    [cached] = plugin.store.list_sync(f"calibrated/{obs}/")
    again = admin.get(f"{API}/frames/{light}/calibrated")
    assert again.headers["x-calibration-cache"] == "hit" and again.content == content
    assert plugin.store.list_sync(f"calibrated/{obs}/") == [
        cached
    ]  # the same object, not rewritten

    # a light whose file is damaged: cal_failed, with the reason, on both endpoints
    plugin.store.put_bytes_sync(broken_key, broken_bytes[:4000])
    failed = admin.get(f"{API}/frames/{broken}/calibrated")
    assert (failed.status_code, failed.json()["error"]) == (409, "cal_failed")
    view = get_frame(admin, broken)
    assert (
        view["calibration_status"] == "cal_failed"
        and f"light {broken}" in view["calibration_error"]
    )
    listed = admin.get(f"{API}/library/{obs}", params={"frame_type": "light"}).json()["items"]
    by_id = {item["id"]: item for item in listed}
    assert (by_id[light]["calibration_status"], by_id[broken]["calibration_status"]) == (
        "calibrated",
        "cal_failed",
    )
    assert by_id[broken]["calibration_error"] == view["calibration_error"]
    assert by_id[light]["calibration_masters"] == {"dark": dark["id"], "flat": flat["id"]}

    # five more darks: a new master dark supersedes the one the cached file used
    register(plugin, obs, darks(cam, rng, datetime.now(UTC), N_FRAMES, exposure_s=EXPOSURE_S))
    new_dark = wait_masters(
        admin, obs, 1, frame_type="dark", exposure_s=EXPOSURE_S, n_frames=2 * N_FRAMES
    )[0]
    wait_for(
        lambda: plugin.store.list_sync(f"calibrated/{obs}/") == [], what="the cache invalidated"
    )
    # the event follows the deletion: wait for it rather than read it at once
    wait_for(
        lambda: subject_count(system.config, f"cache.invalidated.{obs}") >= 1,
        what="cache.invalidated published",
    )
    header, pixels, _ = calibrated(admin, light, cache="miss")
    assert header["CALDARK"] == new_dark["id"]
    assert_matches_truth(cam, pixels, truth)

    # a server admin clears the cache of the observatory; an observatory admin may not
    user = admin.post(
        "/api/v1/admin/users",
        json={
            "name": "observatory admin",
            "memberships": [{"observatory_id": obs, "can_admin": True}],
        },
    ).json()
    with httpx.Client(
        base_url=str(admin.base_url), headers={"Authorization": f"Bearer {user['token']}"}
    ) as observatory_admin:
        assert (
            observatory_admin.post(f"{API}/cache/clear", params={"observatory_id": obs}).status_code
            == 403
        )
        assert observatory_admin.get(f"{API}/frames/{light}/calibrated").status_code == 200
    cleared = admin.post(f"{API}/cache/clear", params={"observatory_id": obs})
    assert cleared.status_code == 200 and cleared.json() == {"observatory_id": obs, "entries": 1}
    assert plugin.store.list_sync(f"calibrated/{obs}/") == []
    calibrated(admin, light, cache="miss")


def test_ccd_light_matches_the_truth_and_its_header_carries_the_warnings(
    admin, plugin, observatory, clock
):
    obs, cam, rng = observatory, warm_camera("Calibration CCD"), np.random.default_rng(22)
    put_settings(
        admin, obs, camera_type="CCD", min_frames_for_master=N_FRAMES, stacking_method="mean"
    )
    now = datetime.now(UTC)
    bias = [
        frame_file(cam, "bias", rng=rng, captured_at=now - i * MINUTE, exposure_s=0.0)
        for i in range(N_FRAMES)
    ]
    # the dark waits for the bias, the flat for the dark (deferred, then resumed)
    register(
        plugin,
        obs,
        bias + darks(cam, rng, now, N_FRAMES, exposure_s=EXPOSURE_S) + flats(cam, rng, now),
    )
    flat = wait_masters(admin, obs, 1, frame_type="flat")[0]
    dark = wait_masters(admin, obs, 1, frame_type="dark")[0]
    master_bias = wait_masters(admin, obs, 1, frame_type="bias")[0]
    assert dark["method_params"].get("unit") == "adu/s"

    light_bytes, truth = light_file(
        cam, rng=rng, captured_at=now, sky_adu_s=SKY_ADU_S, exposure_s=EXPOSURE_S
    )
    odd_bytes, _ = light_file(
        cam, rng=rng, captured_at=now, exposure_s=EXPOSURE_S, temperature_c=-11.5, filter_name="R"
    )
    light_key, odd_key = register(plugin, obs, [light_bytes, odd_bytes])
    light, odd = light_id_for(admin, obs, light_key), light_id_for(admin, obs, odd_key)

    header, pixels, _ = calibrated(admin, light, cache="miss")
    assert (header["CALBIAS"], header["CALDARK"], header["CALFLAT"]) == (
        master_bias["id"],
        dark["id"],
        flat["id"],
    )
    assert header["CALCAMT"] == "CCD" and header["CALNWARN"] == 0
    assert "(light - bias - dark_rate * exposure) / flat" in str(header["HISTORY"])
    assert_matches_truth(cam, pixels, truth)

    header, _, _ = calibrated(admin, odd, cache="miss")
    warnings = warnings_in(header)
    assert "CALFLAT" not in header
    assert any(
        w.startswith(f"temperature mismatch: master dark {dark['id']} at -10.0 C, light at -11.5 C")
        for w in warnings
    )
    assert any(w.startswith("missing flat") for w in warnings)
    assert get_frame(admin, odd)["calibration_warnings"] == warnings

    # eight days on, the master flat (max age 7 days) is stale: a new file says so
    clock.move_to(datetime.fromisoformat(flat["created_at"]) + 7 * DAY + MINUTE)
    stale = f"stale master: master flat {flat['id']} is expired (older than 7 days)"
    assert stale in get_frame(admin, light)["calibration_warnings"]
    header, _, _ = calibrated(admin, light, cache="miss")
    assert stale in warnings_in(header)
    calibrated(admin, light, cache="hit")
