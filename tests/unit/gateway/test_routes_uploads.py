"""Uploads over the fakes with small real FITS files: ``POST /frames`` (stored, then
registered) and ``POST /masters/upload`` (stored, recorded, announced; or refused with
nothing stored), the form's fields, the size limit."""

from __future__ import annotations

import pytest
from nats.errors import ConnectionClosedError

from calib_core import events
from tests.integration.api_helpers import CAMERA, frame_bytes, master_bytes
from tests.unit.gateway.harness import API, OTHER, OWN, UPLOAD_LIMIT_BYTES, Api


async def upload_frame(
    api: Api, observatory_id: str | None, data: bytes, role: str = "server_admin", **fields
):
    form = {k: str(v) for k, v in fields.items()}
    if observatory_id is not None:
        form["observatory_id"] = observatory_id
    files = {"file": ("frame.fits", data, "application/fits")}
    return await api.post(f"{API}/frames", role=role, data=form, files=files)


async def upload_master(
    api: Api, observatory_id: str, data: bytes, role: str = "server_admin", **fields
):
    form = {"observatory_id": observatory_id, **{k: str(v) for k, v in fields.items()}}
    files = {"file": ("master.fits", data, "application/fits")}
    return await api.post(f"{API}/masters/upload", role=role, data=form, files=files)


def registrations(api: Api, observatory_id: str) -> list[events.FrameRegistered]:
    return [
        b
        for b in api.world.events.bodies(events.FRAME_REGISTERED)
        if b.observatory_id == observatory_id
    ]


def stored_keys(api: Api, prefix: str) -> list[str]:
    return [key for key in api.world.store.objects if key.startswith(prefix)]


async def test_an_uploaded_frame_is_stored_then_registered(api):
    observatory_id = await api.observatory()
    data = frame_bytes("dark", index=1)
    response = await upload_frame(api, observatory_id, data, gain=120, filter="")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"event_id", "storage_key"}
    assert accepted["storage_key"] == f"frames/{observatory_id}/{accepted['event_id']}.fits"
    assert api.world.store.data(accepted["storage_key"]) == data
    [registered] = registrations(api, observatory_id)
    assert registered.event_id == accepted["event_id"] and registered.gain == 120.0
    assert registered.filter is None  # an empty field counts as absent
    message = api.world.events.published[-1]
    assert message.msg_id == accepted["event_id"]


async def test_a_plugin_registers_for_its_own_observatory_without_naming_it(api):
    response = await upload_frame(api, None, frame_bytes("dark", index=5), role="plugin")
    assert response.status_code == 202, response.text
    assert response.json()["storage_key"].startswith(f"frames/{OWN}/")
    other = await upload_frame(api, OTHER, frame_bytes("dark", index=6), role="plugin")
    assert other.status_code == 403
    viewer = await upload_frame(api, OWN, frame_bytes("dark", index=7), role="viewer")
    assert viewer.status_code == 403


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"colour": "blue"}, "unknown form field 'colour'"),
        ({"gain": "high"}, "form field 'gain' must be a number"),
        ({"width": "1.5"}, "form field 'width' must be a number"),
        ({"captured_at": "yesterday"}, "invalid form field"),
        ({"event_id": "mine"}, "unknown form field 'event_id'"),
    ],
)
async def test_bad_form_fields_are_a_400_and_nothing_is_stored(api, fields, words):
    observatory_id = await api.observatory()
    response = await upload_frame(api, observatory_id, frame_bytes("dark"), **fields)
    assert response.status_code == 400, response.text
    assert words in response.json()["detail"]
    assert stored_keys(api, f"frames/{observatory_id}/") == []
    assert registrations(api, observatory_id) == []


async def test_an_upload_names_an_existing_observatory_and_carries_a_file(api):
    observatory_id = await api.observatory()
    no_observatory = await upload_frame(api, None, frame_bytes("dark"))
    assert no_observatory.status_code == 400
    assert "observatory_id" in no_observatory.json()["detail"]
    unknown = await upload_master(api, "nowhere", master_bytes())
    assert unknown.status_code == 404
    no_file = await api.post(
        f"{API}/masters/upload",
        data={"observatory_id": observatory_id},
        files={"note": (None, "x")},
    )
    assert no_file.status_code == 400 and "file" in no_file.json()["detail"]
    not_multipart = await api.post(f"{API}/masters/upload", json={"observatory_id": observatory_id})
    assert not_multipart.status_code == 400
    assert not_multipart.json()["detail"] == "expected multipart/form-data with a boundary"


async def test_an_upload_over_the_limit_is_a_413_and_nothing_is_stored(api):
    observatory_id = await api.observatory()
    too_big = master_bytes(seed=2) + b"\0" * UPLOAD_LIMIT_BYTES
    for response in (
        await upload_master(api, observatory_id, too_big),
        await upload_frame(api, observatory_id, too_big),
    ):
        assert response.status_code == 413
        assert response.json() == {
            "error": "payload_too_large",
            "detail": f"file is larger than the limit of {UPLOAD_LIMIT_BYTES} bytes",
        }
    assert stored_keys(api, f"frames/{observatory_id}/") == []
    assert stored_keys(api, f"masters/{observatory_id}/") == []


async def test_an_uploaded_master_is_active_stored_and_announced(api):
    observatory_id = await api.observatory()
    data = master_bytes(level=500.0, seed=1)
    response = await upload_master(api, observatory_id, data)
    assert response.status_code == 201, response.text
    master = response.json()
    assert master["is_master"] and master["status"] == "active" and master["frame_type"] == "dark"
    assert (master["n_frames"], master["exposure_s"], master["temperature_c"]) == (20, 60.0, -10.0)
    assert master["camera_name"] == CAMERA.name and master["components"] == []
    assert master["method"] == "uploaded" and master["size_bytes"] == len(data)
    assert api.world.store.data(master["storage_key"]) == data
    assert (await api.world.frames.get(master["id"])).status.value == "active"
    [created] = [
        b for b in api.world.events.bodies(events.MASTER_CREATED) if b.master_id == master["id"]
    ]
    assert created.observatory_id == observatory_id

    duplicate = await upload_master(api, observatory_id, data)
    assert duplicate.status_code == 409 and master["id"] in duplicate.json()["detail"]
    assert stored_keys(api, f"masters/{observatory_id}/") == [master["storage_key"]]


async def test_the_form_corrects_what_the_header_gets_wrong(api):
    observatory_id = await api.observatory()
    response = await upload_master(
        api, observatory_id, master_bytes(seed=3), exposure_s=120, camera_name="Renamed"
    )
    assert response.status_code == 201, response.text
    assert (response.json()["exposure_s"], response.json()["camera_name"]) == (120.0, "Renamed")


@pytest.mark.parametrize(
    ("data", "fields", "status", "words"),
    [
        (b"SIMPLE  = not really a FITS file" * 100, {}, 422, "FITS"),
        (master_bytes()[:5000], {}, 422, "truncated"),
        (frame_bytes("light", filter_name="L"), {}, 422, "dark, flat or bias"),
        (master_bytes(), {"exposure_s": "-5"}, 422, "exposure_s"),
        (master_bytes(), {"gain": "high"}, 400, "gain"),
        (master_bytes(), {"colour": "blue"}, 400, "colour"),
    ],
)
async def test_invalid_master_uploads_are_refused_and_nothing_is_stored(
    api, data, fields, status, words
):
    observatory_id = await api.observatory()
    response = await upload_master(api, observatory_id, data, **fields)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert stored_keys(api, f"masters/{observatory_id}/") == []
    assert await api.world.frames.masters(observatory_id) == []


async def test_without_the_bus_a_master_upload_is_taken_back_and_a_503(api, monkeypatch):
    observatory_id = await api.observatory()

    async def bus_down(*args, **kwargs):
        raise ConnectionClosedError

    monkeypatch.setattr(api.world.events, "publish", bus_down)
    response = await upload_master(api, observatory_id, master_bytes(seed=4))
    assert response.status_code == 503
    assert response.json()["dependency"] == "nats"
    assert stored_keys(api, f"masters/{observatory_id}/") == []
    assert await api.world.frames.masters(observatory_id) == []


async def test_only_managers_upload_masters(api):
    for role, status in (("viewer", 403), ("plugin", 403), ("other_admin", 403)):
        response = await upload_master(api, OWN, master_bytes(seed=5), role=role)
        assert response.status_code == status, role
