"""Curation through the real services (SPEC §6, "Curation: held frames"): the quality
gates hold a light-leak dark and a saturated flat out of their masters; a deleted master's
frames are held, not stacked again by the sweep, until released; manual creation refuses
groups with too few frames to stack; an individual frame has a preview; CMOS flats of two
exposures each lose the master dark of their own exposure."""

from __future__ import annotations

import io
import time

import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clip

from tests.integration.registry_helpers import (
    API,
    frame_bytes,
    jobs,
    library,
    masters,
    put_settings,
    register_all,
    wait_registered,
)
from tests.support.bad_frames import brightened
from tests.support.system import wait_for


def active(admin, observatory_id: str, frame_type: str) -> list[dict]:
    return [
        m
        for m in masters(admin, observatory_id)
        if m["frame_type"] == frame_type and m["status"] == "active"
    ]


def held(admin, observatory_id: str) -> dict[str, str]:
    return {f["id"]: f["held_reason"] for f in library(admin, observatory_id, held="true")["items"]}


def test_a_light_leak_dark_is_held_a_deleted_masters_frames_wait_for_their_release(
    admin, plugin, system, observatory
):
    put_settings(admin, observatory, min_frames_for_master=10)
    good = [frame_bytes("dark", i) for i in range(10)]
    # the leak first: whatever the registry's batches, it is in the first job, which holds it
    register_all(plugin, observatory, [brightened(frame_bytes("dark", 10), 3000.0), *good])
    [master] = wait_for(
        lambda: [m for m in active(admin, observatory, "dark") if m["n_frames"] == 10],
        timeout_s=90,
        what="the master of the ten good darks",
    )
    frames = library(admin, observatory, is_master="false")["items"]
    [leak] = [f for f in frames if f["id"] not in master["components"]]
    assert len(frames) == 11 and leak["held"] is True
    assert leak["held_reason"].startswith("dark level gate: median ")
    assert "robust sigmas from the group's" in leak["held_reason"]

    preview = admin.get(f"{API}/frames/{leak['id']}/preview.png")  # judge it before releasing
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")

    assert admin.delete(f"{API}/frames/{master['id']}").status_code == 204
    reasons = held(admin, observatory)
    assert {reasons[i] for i in master["components"]} == {
        f"source of deleted master {master['id']}"
    }
    time.sleep(2 * system.config.sweep_interval_s + 1)  # two sweeps find nothing to stack
    assert active(admin, observatory, "dark") == []
    assert all(j["status"] in ("succeeded", "failed") for j in jobs(admin, observatory))

    released = admin.post(f"{API}/frames/release", json={"frame_ids": master["components"]})
    assert released.status_code == 200, released.text
    assert sorted(released.json()["released"]) == sorted(master["components"])
    back = wait_for(
        lambda: active(admin, observatory, "dark"), timeout_s=60, what="the master back"
    )
    assert sorted(back[0]["components"]) == sorted(master["components"])
    assert list(held(admin, observatory)) == [leak["id"]]


def test_a_saturated_flat_is_held(admin, plugin, system, observatory):
    put_settings(admin, observatory, min_frames_for_master=3)
    register_all(plugin, observatory, [frame_bytes("dark", i, exposure_s=2.0) for i in range(3)])
    wait_for(lambda: active(admin, observatory, "dark"), timeout_s=60, what="the master dark")
    flats = [frame_bytes("flat", i, exposure_s=2.0, filter_name="L") for i in range(3)]
    burnt = brightened(frame_bytes("flat", 3, exposure_s=2.0, filter_name="L"), 40000.0)
    register_all(plugin, observatory, [burnt, *flats])
    [flat] = wait_for(
        lambda: active(admin, observatory, "flat"), timeout_s=60, what="the master flat"
    )
    assert flat["n_frames"] == 3
    [reason] = held(admin, observatory).values()
    assert reason.startswith("saturation gate: ") and reason.endswith("limit 0.1%")


def test_manual_creation_refuses_groups_with_too_few_frames_to_stack(
    admin, plugin, system, observatory
):
    put_settings(admin, observatory, min_frames_for_master=10, dark_max_age_days=30)
    old = [frame_bytes("dark", i, minutes_ago=40 * 24 * 60) for i in range(3)]
    register_all(plugin, observatory, [*old, frame_bytes("dark", 3)])
    wait_registered(admin, system.config, observatory, 4)
    body = {"observatory_id": observatory, "frame_type": "dark", "exposure_s": 30.0}

    refused = admin.post(f"{API}/masters/create", json={**body, "force": True})
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "the group has 1 frames to stack (3 older than the dark max age of 30 days not"
        " counted); 3 needed"
    )
    refused = admin.post(f"{API}/masters/create", json=body)
    assert refused.status_code == 422 and "; 10 needed (use force" in refused.json()["detail"]
    assert jobs(admin, observatory) == []


def fits_pixels(admin, frame_id: str) -> np.ndarray:
    response = admin.get(f"{API}/frames/{frame_id}/download")
    assert response.status_code == 200, response.text
    with fits.open(io.BytesIO(response.content)) as hdul:
        return hdul[0].data.astype(np.float32)


def test_cmos_flats_of_two_exposures_lose_the_dark_of_their_own_exposure(
    admin, plugin, system, observatory
):
    put_settings(admin, observatory, min_frames_for_master=6)
    darks = [frame_bytes("dark", i, exposure_s=1.0) for i in range(6)]
    darks += [frame_bytes("dark", 10 + i, exposure_s=5.0) for i in range(6)]
    register_all(plugin, observatory, darks)
    dark_masters = wait_for(
        lambda: (found := active(admin, observatory, "dark")) and len(found) == 2 and found,
        timeout_s=90,
        what="the master darks of 1 s and 5 s",
    )
    flats = [frame_bytes("flat", i, exposure_s=1.0, filter_name="L") for i in range(3)]
    flats += [frame_bytes("flat", 10 + i, exposure_s=5.0, filter_name="L") for i in range(3)]
    register_all(plugin, observatory, flats)
    [flat] = wait_for(
        lambda: active(admin, observatory, "flat"), timeout_s=60, what="the master flat"
    )

    dark_of = {m["exposure_s"]: fits_pixels(admin, m["id"]) for m in dark_masters}
    corrected = []
    for source in library(admin, observatory, frame_type="flat", is_master="false")["items"]:
        frame = fits_pixels(admin, source["id"]) - dark_of[source["exposure_s"]]
        corrected.append(frame / np.median(frame))
    expected = sigma_clip(
        np.stack(corrected), sigma=3.0, maxiters=5, axis=0, cenfunc="median", stdfunc="std"
    ).mean(axis=0)
    expected = np.asarray(expected, dtype=np.float32)
    expected /= np.median(expected)
    assert flat["n_frames"] == 6 and len(corrected) == 6
    np.testing.assert_allclose(fits_pixels(admin, flat["id"]), expected, rtol=1e-5)
