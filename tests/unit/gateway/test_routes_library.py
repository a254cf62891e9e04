"""The library routes over the fakes: pages and filters, frame metadata, components,
streamed downloads, previews, calibrated lights and deletion."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from calib_core import events
from calib_core.models import FrameType
from tests.unit.app.library_world import stored
from tests.unit.core import factories as make
from tests.unit.gateway.harness import API, OWN, Api

CAMERA, OTHER_CAMERA = "ZWO ASI294MM Pro", "QHY 268M"


def frame_in(observatory_id: str, frame_type: FrameType = FrameType.DARK, **overrides):
    frame_id = make.next_id()
    return make.frame(
        frame_type,
        id=frame_id,
        observatory_id=observatory_id,
        storage_key=f"frames/{observatory_id}/{frame_id}.fits",
        camera_name=overrides.pop("camera_name", CAMERA),
        **overrides,
    )


def master_in(observatory_id: str, frame_type: FrameType = FrameType.DARK, **overrides):
    master_id = make.next_id("m")
    return make.master(
        frame_type,
        id=master_id,
        observatory_id=observatory_id,
        storage_key=f"masters/{observatory_id}/{master_id}.fits",
        camera_name=overrides.pop("camera_name", CAMERA),
        **overrides,
    )


async def stocked(api: Api) -> str:
    """3 darks and 2 R flats of one camera, 1 L flat of another, 1 light; registered a
    minute apart, the light last."""
    observatory_id = await api.observatory()
    frames = [frame_in(observatory_id) for _ in range(3)]
    frames += [frame_in(observatory_id, FrameType.FLAT, filter="R") for _ in range(2)]
    frames += [frame_in(observatory_id, FrameType.FLAT, filter="L", camera_name=OTHER_CAMERA)]
    frames += [frame_in(observatory_id, FrameType.LIGHT, filter="R", exposure_s=300.0)]
    start = api.world.now() - timedelta(hours=1)
    for minute, frame in enumerate(frames):
        frame.registered_at = start + timedelta(minutes=minute)
        await stored(api.world, frame)
    return observatory_id


async def page(api: Api, observatory_id: str, **params) -> dict:
    return await api.ok("GET", f"{API}/library/{observatory_id}", params=params)


async def test_library_filters_pagination_and_order(api):
    observatory_id = await stocked(api)
    everything = await page(api, observatory_id, limit=500)
    assert (everything["total"], everything["page"], everything["limit"]) == (7, 1, 500)
    registered = [datetime.fromisoformat(item["registered_at"]) for item in everything["items"]]
    assert registered == sorted(registered, reverse=True)  # newest first

    assert (await page(api, observatory_id, frame_type="dark"))["total"] == 3
    assert (await page(api, observatory_id, frame_type="flat", camera_name=CAMERA))["total"] == 2
    assert (await page(api, observatory_id, filter="L"))["total"] == 1
    assert (await page(api, observatory_id, is_master="true"))["total"] == 0
    unclaimed = await page(api, observatory_id, is_master="false", exclude_mastered="true")
    assert unclaimed["total"] == 7

    pages = [await page(api, observatory_id, limit=3, page=n) for n in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert [i["id"] for p in pages for i in p["items"]] == [i["id"] for i in everything["items"]]
    assert all(p["total"] == 7 for p in pages)


@pytest.mark.parametrize(
    "bad",
    [{"limit": 501}, {"limit": 0}, {"page": 0}, {"frame_type": "sky"}, {"is_master": "maybe"}],
)
async def test_out_of_range_library_parameters_are_a_400(api, bad):
    response = await api.get(f"{API}/library/{OWN}", params=bad)
    assert response.status_code == 400, response.text
    assert set(response.json()) >= {"error", "detail"}


async def test_lights_in_the_library_carry_their_calibration(api):
    observatory_id = await api.observatory()
    dark = await stored(api.world, master_in(observatory_id))
    await stored(api.world, frame_in(observatory_id, FrameType.LIGHT))
    items = (await page(api, observatory_id, frame_type="light"))["items"]
    [light] = items
    assert light["calibration_status"] == "calibrated"
    assert light["calibration_masters"] == {"dark": dark.id}
    assert light == await api.ok("GET", f"{API}/frames/{light['id']}")


async def test_frame_metadata_components_and_streamed_download(api):
    observatory_id = await api.observatory()
    data = bytes(range(256)) * 8192  # two chunks of the fake bucket
    dark = await stored(api.world, frame_in(observatory_id), data=data)
    record = await api.ok("GET", f"{API}/frames/{dark.id}")
    assert record["id"] == dark.id and record["observatory_id"] == observatory_id
    assert (record["exposure_s"], record["gain"], record["is_master"]) == (60.0, 100, False)

    download = await api.get(f"{API}/frames/{dark.id}/download")
    assert download.status_code == 200 and download.headers["content-type"] == "application/fits"
    assert download.headers["content-disposition"] == f'attachment; filename="{dark.id}.fits"'
    assert hashlib.sha256(download.content).hexdigest() == record["sha256"]

    response = await api.get(f"{API}/frames/{dark.id}/components")
    assert response.status_code == 404  # an individual frame has no components
    for missing in ("nope", "nope/download", "nope/components", "nope/preview.png"):
        response = await api.get(f"{API}/frames/{missing}")
        assert response.status_code == 404, missing
        assert response.json()["error"] == "not_found"


async def test_a_master_lists_its_components(api):
    observatory_id = await api.observatory()
    sources = [await stored(api.world, frame_in(observatory_id)) for _ in range(2)]
    master = await stored(api.world, master_in(observatory_id, components=[f.id for f in sources]))
    components = await api.ok("GET", f"{API}/frames/{master.id}/components")
    assert components["master_id"] == master.id
    assert sorted(f["id"] for f in components["items"]) == sorted(f.id for f in sources)


async def test_a_file_missing_from_storage_is_a_404(api):
    observatory_id = await api.observatory()
    dark = await stored(api.world, frame_in(observatory_id))
    await api.world.store.delete(dark.storage_key)
    response = await api.get(f"{API}/frames/{dark.id}/download")
    assert response.status_code == 404
    assert response.json()["detail"] == f"the file of frame '{dark.id}' is missing from storage"


async def test_previews(api):
    observatory_id = await api.observatory()
    master = master_in(observatory_id)
    master.preview_key = f"previews/{observatory_id}/{master.id}.png"
    master = await stored(api.world, master)
    preview = await api.get(f"{API}/frames/{master.id}/preview.png")
    assert preview.status_code == 200 and preview.content == b"png"
    assert preview.headers["content-type"] == "image/png"
    assert preview.headers["cache-control"] == "max-age=3600"

    await api.world.store.delete(master.preview_key)
    missing = await api.get(f"{API}/frames/{master.id}/preview.png")
    assert missing.status_code == 404 and "preview" in missing.json()["detail"]
    master.preview_key = None
    await api.world.frames.update(master.id, {"preview_key": None})
    response = await api.get(f"{API}/frames/{master.id}/preview.png")
    assert response.json()["detail"] == f"frame '{master.id}' has no preview"


async def test_an_individual_frame_gets_its_preview_on_first_request(api):
    observatory_id = await api.observatory()
    dark = await stored(api.world, frame_in(observatory_id), data=b"SIMPLE dark pixels")
    preview = await api.get(f"{API}/frames/{dark.id}/preview.png")
    assert preview.status_code == 200 and preview.content == b"png of SIMPLE dark pixe"
    key = f"previews/{observatory_id}/{dark.id}.png"
    assert (await api.world.frames.get(dark.id)).preview_key == key and key in api.world.store
    again = await api.get(f"{API}/frames/{dark.id}/preview.png")
    assert again.content == preview.content
    assert [r.subject for r in api.lifecycle.requests] == ["lifecycle.preview"]  # made once

    assert (await api.delete(f"{API}/frames/{dark.id}")).status_code == 204
    assert key not in api.world.store  # the preview goes with its frame

    gone = await stored(api.world, frame_in(observatory_id))
    await api.world.store.delete(gone.storage_key)
    response = await api.get(f"{API}/frames/{gone.id}/preview.png")
    assert response.status_code == 404 and "has no preview: " in response.json()["detail"]


async def test_a_calibrated_light_is_computed_once_then_served_from_the_cache(api):
    observatory_id = await api.observatory()
    await stored(api.world, master_in(observatory_id))
    light = await stored(api.world, frame_in(observatory_id, FrameType.LIGHT))
    url = f"{API}/frames/{light.id}/calibrated"
    first = await api.get(url)
    assert first.status_code == 200, first.text
    assert first.headers["x-calibration-cache"] == "miss"
    assert first.headers["content-type"] == "application/fits"
    assert first.headers["content-disposition"] == (
        f'attachment; filename="{light.id}-calibrated.fits"'
    )
    assert first.content == b"calibrated:" + light.id.encode()
    second = await api.get(url)
    assert second.headers["x-calibration-cache"] == "hit" and second.content == first.content
    assert [r.body for r in api.lifecycle.requests] == [{"frame_id": light.id}]


async def test_a_light_that_cannot_be_calibrated_is_a_409_with_its_code(api):
    observatory_id = await api.observatory()
    light = await stored(api.world, frame_in(observatory_id, FrameType.LIGHT))
    response = await api.get(f"{API}/frames/{light.id}/calibrated")
    assert response.status_code == 409
    assert response.json()["error"] == "no_masters"
    assert "no current master dark" in response.json()["detail"]

    await stored(api.world, master_in(observatory_id), data=b"unreadable")
    api.calibrator.unreadable.add(b"unreadable")
    response = await api.get(f"{API}/frames/{light.id}/calibrated")
    assert response.status_code == 409 and response.json()["error"] == "cal_failed"

    dark = await stored(api.world, frame_in(observatory_id))
    response = await api.get(f"{API}/frames/{dark.id}/calibrated")
    assert response.status_code == 404 and "only lights are calibrated" in response.text


async def test_without_the_lifecycle_service_a_calibration_is_a_503(api):
    observatory_id = await api.observatory()
    await stored(api.world, master_in(observatory_id))
    light = await stored(api.world, frame_in(observatory_id, FrameType.LIGHT))
    api.lifecycle.down = True
    response = await api.get(f"{API}/frames/{light.id}/calibrated")
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert response.json()["detail"].startswith("lifecycle is unavailable: ")


async def test_deleting_a_master_removes_record_file_and_preview(api):
    observatory_id = await api.observatory()
    source = await stored(api.world, frame_in(observatory_id))
    master = master_in(observatory_id, components=[source.id])
    master.preview_key = f"previews/{observatory_id}/{master.id}.png"
    master = await stored(api.world, master)
    await api.world.frames.claim([source.id], master.id)

    response = await api.delete(f"{API}/frames/{master.id}", role="server_admin")
    assert response.status_code == 204 and response.content == b""
    assert await api.world.frames.get(master.id) is None
    assert master.storage_key not in api.world.store and master.preview_key not in api.world.store
    assert (await api.world.frames.get(source.id)).master_id is None  # unclaimed again
    [deleted] = api.world.events.bodies(events.FRAME_DELETED)[-1:]
    assert deleted.frame_id == master.id and deleted.is_master
    assert (await api.delete(f"{API}/frames/{master.id}")).status_code == 404


async def test_members_may_look_but_only_managers_delete(api):
    dark = await stored(api.world, frame_in(OWN))
    assert (await api.get(f"{API}/frames/{dark.id}", role="viewer")).status_code == 200
    assert (await api.get(f"{API}/frames/{dark.id}", role="other_admin")).status_code == 403
    assert (await api.get(f"{API}/frames/{dark.id}", role="plugin")).status_code == 403
    assert (await api.delete(f"{API}/frames/{dark.id}", role="viewer")).status_code == 403
    assert (await api.delete(f"{API}/frames/{dark.id}", role="obs_admin")).status_code == 204


async def test_camera_and_filter_match_parts_of_names_ignoring_case(api):
    observatory_id = await stocked(api)
    assert (await page(api, observatory_id, camera_name="asi294"))["total"] == 6
    assert (await page(api, observatory_id, camera_name="qhy"))["total"] == 1
    assert (await page(api, observatory_id, filter="r"))["total"] == 3  # 2 flats, 1 light
    assert (await page(api, observatory_id, camera_name=".*"))["total"] == 0  # text, not a pattern


async def test_individual_frames_carry_their_group_and_its_progress(api):
    observatory_id = await api.observatory(min_frames_for_master=3)
    darks = [await stored(api.world, frame_in(observatory_id)) for _ in range(2)]
    items = (await page(api, observatory_id))["items"]
    assert {i["group_key"] for i in items} == {items[0]["group_key"]} and items[0]["group_key"]
    assert items[0]["config_key"].startswith("binning=1x1|camera_name=")
    assert items[0]["group"] == {"unclaimed": 2, "retained": 2, "threshold": 3, "complete": False}
    await stored(api.world, frame_in(observatory_id))
    items = (await page(api, observatory_id))["items"]
    assert all(i["group"]["complete"] for i in items) and len(items) == len(darks) + 1


async def test_held_frames_are_listed_and_released_singly_or_in_bulk(api):
    observatory_id = await api.observatory(min_frames_for_master=3)
    darks = [await stored(api.world, frame_in(observatory_id)) for _ in range(3)]
    await api.world.frames.hold({d.id: "source of deleted master m1" for d in darks})
    held = (await page(api, observatory_id, held="true"))["items"]
    assert sorted(f["id"] for f in held) == sorted(d.id for d in darks)
    assert {(f["held"], f["held_reason"], f["group"]) for f in held} == {
        (True, "source of deleted master m1", None)
    }
    assert (await page(api, observatory_id, held="false"))["total"] == 0

    one = await api.ok("POST", f"{API}/frames/{darks[0].id}/release")
    assert one == {"released": [darks[0].id], "jobs": []}  # one frame is below the threshold
    again = await api.ok("POST", f"{API}/frames/{darks[0].id}/release")
    assert again == {"released": [], "jobs": []}

    missing = await api.post(f"{API}/frames/release", json={"frame_ids": [darks[1].id, "nope"]})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert (await api.world.frames.get(darks[1].id)).held  # all or nothing
    bulk = await api.ok("POST", f"{API}/frames/release", json={"frame_ids": [d.id for d in darks]})
    assert sorted(bulk["released"]) == sorted(d.id for d in darks[1:])
    [job] = bulk["jobs"]  # released frames count at once: the group reached its threshold
    assert sorted(job["frame_ids"]) == sorted(d.id for d in darks) and job["status"] == "queued"
    assert (await page(api, observatory_id, held="true"))["total"] == 0


@pytest.mark.parametrize("body", [{}, {"frame_ids": []}, {"frame_ids": ["a"] * 501}, {"x": 1}])
async def test_a_bad_release_body_is_a_400(api, body):
    await api.observatory()
    response = await api.post(f"{API}/frames/release", json=body)
    assert response.status_code == 400, response.text
