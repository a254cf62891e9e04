"""The HTTP API of SPEC §8 against the running system: library, uploads and downloads,
summary, needs and capture plan, health, users and tokens, hostile query parameters."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import httpx
import pymongo
import pytest
from PIL import Image

from tests.integration.api_helpers import (
    API,
    CAMERA,
    callers,
    create_observatory,
    frame_bytes,
    library,
    master_bytes,
    put_settings,
    upload_frame,
    upload_master,
)
from tests.support.system import unique, wait_for


@pytest.fixture
def stocked(admin, observatory):
    """An observatory with 3 darks and 2 R flats of one camera, 1 L flat of another, 1 light."""
    files = [frame_bytes("dark", index=i) for i in range(3)]
    files += [frame_bytes("flat", index=i, filter_name="R", exposure_s=2.0) for i in range(2)]
    files += [frame_bytes("flat", index=9, filter_name="L", exposure_s=2.0, camera_name="QHY 268M")]
    files += [frame_bytes("light", index=0, filter_name="R", exposure_s=300.0)]
    for data in files:
        response = upload_frame(admin, observatory, data)
        assert response.status_code == 202, response.text
        assert set(response.json()) == {"event_id", "storage_key"}
    wait_for(
        lambda: library(admin, observatory)["total"] == len(files),
        timeout_s=30,
        what="registrations",
    )
    return observatory


def test_library_filters_pagination_and_order(admin, stocked):
    everything = library(admin, stocked, limit=500)
    assert everything["total"] == 7 and everything["page"] == 1 and everything["limit"] == 500
    # parsed: a timestamp on the exact second is written without a fraction
    registered = [datetime.fromisoformat(item["registered_at"]) for item in everything["items"]]
    assert registered == sorted(registered, reverse=True)  # newest first

    assert library(admin, stocked, frame_type="dark")["total"] == 3
    assert library(admin, stocked, frame_type="flat", camera_name=CAMERA.name)["total"] == 2
    assert library(admin, stocked, filter="L")["total"] == 1
    assert library(admin, stocked, is_master="true")["total"] == 0
    assert library(admin, stocked, is_master="false", exclude_mastered="true")["total"] == 7

    pages = [library(admin, stocked, limit=3, page=page) for page in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert [i["id"] for p in pages for i in p["items"]] == [i["id"] for i in everything["items"]]
    assert all(p["total"] == 7 for p in pages)

    for bad in (
        {"limit": 501},
        {"limit": 0},
        {"page": 0},
        {"frame_type": "sky"},
        {"is_master": "maybe"},
    ):
        response = admin.get(f"{API}/library/{stocked}", params=bad)
        assert response.status_code == 400, (bad, response.text)
        assert set(response.json()) >= {"error", "detail"}


def test_mongodb_operators_in_parameters_never_reach_a_query(admin, stocked):
    for name in ("camera_name[$ne]", "$where", "filter[$gt]"):
        response = admin.get(f"{API}/library/{stocked}", params={name: "x"})
        assert response.status_code == 400, response.text
        assert name in response.json()["detail"]
    # an operator as a value is only a (non-matching) literal
    assert library(admin, stocked, camera_name='{"$gt": ""}')["total"] == 0
    assert library(admin, stocked, camera_name='{"$ne": null}')["total"] == 0
    response = admin.post(
        f"{API}/masters/create",
        json={"observatory_id": stocked, "frame_type": "dark", "camera_name": {"$ne": None}},
    )
    assert response.status_code == 400, response.text
    response = admin.put(f"{API}/settings/{stocked}", json={"min_frames_for_master": {"$gt": 1}})
    assert response.status_code == 422, response.text
    assert admin.get(f"{API}/settings/{stocked}").json()["min_frames_for_master"] == 10
    response = admin.post("/api/v1/admin/observatories", json={"id": {"$gt": ""}, "name": "x"})
    assert response.status_code == 400, response.text


def test_frame_metadata_components_and_streamed_download(admin, stocked):
    dark = library(admin, stocked, frame_type="dark")["items"][0]
    record = admin.get(f"{API}/frames/{dark['id']}").json()
    assert record["id"] == dark["id"] and record["observatory_id"] == stocked
    assert record["exposure_s"] == 60.0 and record["gain"] == 100 and record["is_master"] is False
    with admin.stream("GET", f"{API}/frames/{dark['id']}/download") as response:
        assert response.status_code == 200
        assert (
            response.headers["content-disposition"] == f'attachment; filename="{dark["id"]}.fits"'
        )
        content = b"".join(response.iter_bytes())
    assert hashlib.sha256(content).hexdigest() == record["sha256"]
    response = admin.get(f"{API}/frames/{dark['id']}/components")
    assert response.status_code == 404  # an individual frame has no components
    for missing in (
        "frames/nope",
        "frames/nope/download",
        "frames/nope/components",
        "frames/nope/preview.png",
    ):
        response = admin.get(f"{API}/{missing}")
        assert response.status_code == 404, missing
        assert response.json()["error"] == "not_found"


def test_uploaded_master_is_active_supersedes_and_downloads(admin, observatory):
    first = upload_master(admin, observatory, master_bytes(level=500.0, seed=1))
    assert first.status_code == 201, first.text
    first = first.json()
    assert first["is_master"] and first["status"] == "active" and first["frame_type"] == "dark"
    assert (
        first["n_frames"] == 20 and first["exposure_s"] == 60.0 and first["temperature_c"] == -10.0
    )
    assert first["camera_name"] == CAMERA.name and first["components"] == []

    data = master_bytes(level=510.0, seed=2)
    second = upload_master(admin, observatory, data).json()

    def superseded():
        old = admin.get(f"{API}/frames/{first['id']}").json()
        return old if old["status"] == "superseded" else None

    old = wait_for(superseded, timeout_s=30, what="supersession of the first upload")
    assert old["superseded_by"] == second["id"]
    download = admin.get(f"{API}/frames/{second['id']}/download")
    assert download.status_code == 200 and download.content == data
    assert admin.get(f"{API}/frames/{second['id']}/components").json() == {
        "master_id": second["id"],
        "items": [],
    }

    duplicate = upload_master(admin, observatory, data)
    assert duplicate.status_code == 409 and second["id"] in duplicate.json()["detail"]
    masters = library(admin, observatory, is_master="true")
    assert masters["total"] == 2

    # the lifecycle service describes an uploaded master as the stacker does its own
    described = wait_for(
        lambda: (m := admin.get(f"{API}/frames/{second['id']}").json())["stats"] and m,
        timeout_s=30,
        what="the uploaded master's statistics",
    )
    assert described["stats"]["median"] == pytest.approx(510.0, abs=0.1)
    assert described["stats"]["robust_std"] == pytest.approx(1.0, rel=0.15)
    assert described["stats"]["hot_pixels"] == 0
    preview = admin.get(f"{API}/frames/{second['id']}/preview.png")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(preview.content)).size == (64, 48)


@pytest.mark.parametrize(
    ("data", "fields", "status", "words"),
    [
        (b"SIMPLE  = not really a FITS file" * 100, {}, 422, "FITS"),
        (master_bytes()[:5000], {}, 422, "truncated"),
        (frame_bytes("light", filter_name="L"), {}, 422, "dark, flat or bias"),
        (master_bytes(), {"gain": "high"}, 400, "gain"),
        (master_bytes(), {"colour": "blue"}, 400, "colour"),
    ],
)
def test_invalid_master_uploads_are_refused_and_nothing_is_stored(
    admin, observatory, data, fields, status, words
):
    response = upload_master(admin, observatory, data, **fields)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert library(admin, observatory)["total"] == 0


def test_upload_requires_the_file_and_an_existing_observatory(admin, observatory):
    no_file = admin.post(
        f"{API}/masters/upload", data={"observatory_id": observatory}, files={"note": (None, "x")}
    )
    assert no_file.status_code == 400 and "file" in no_file.json()["detail"]
    not_multipart = admin.post(f"{API}/masters/upload", json={"observatory_id": observatory})
    assert not_multipart.status_code == 400
    unknown = upload_master(admin, unique("nowhere"), master_bytes())
    assert unknown.status_code == 404
    frame = upload_frame(admin, None, frame_bytes("dark"))
    assert frame.status_code == 400 and "observatory_id" in frame.json()["detail"]


def test_summary_counts_and_latest_masters(admin, stocked):
    master = upload_master(admin, stocked, master_bytes(seed=3)).json()
    summary = admin.get(f"{API}/summary/{stocked}").json()
    assert summary["total_frames"] == 7 and summary["total_masters"] == 1
    cameras = {c["camera_name"]: c for c in summary["cameras"]}
    assert set(cameras) == {CAMERA.name, "QHY 268M"}
    main = cameras[CAMERA.name]
    assert main["frames"] == {"dark": 3, "flat": 2, "bias": 0, "light": 1}
    assert main["unclaimed_frames"]["dark"] == 3
    assert main["masters"]["active"] == 1
    [configuration] = main["configurations"]
    assert (
        configuration["latest_master"]["id"] == master["id"] and configuration["exposure_s"] == 60.0
    )
    assert cameras["QHY 268M"]["frames"]["flat"] == 1


def plan_items(client: httpx.Client, observatory_id: str) -> list[dict]:
    response = client.get(f"{API}/capture-plan/{observatory_id}")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_capture_plan_from_lights_counts_down_as_frames_arrive(admin, observatory):
    put_settings(admin, observatory, min_frames_for_master=3)
    lights = [
        frame_bytes("light", index=0, filter_name="L", exposure_s=300.0, gain=100),
        frame_bytes("light", index=1, filter_name="R", exposure_s=300.0, gain=100),
        frame_bytes("light", index=2, filter_name="L", exposure_s=300.0, gain=200),
    ]
    for data in lights:
        assert upload_frame(admin, observatory, data).status_code == 202
    wait_for(lambda: library(admin, observatory)["total"] == 3, timeout_s=30, what="the lights")

    needs = admin.get(f"{API}/needs/{observatory}").json()
    uncovered = {
        (n["frame_type"], n["filter"], n["gain"]) for n in needs["uncovered_configurations"]
    }
    assert uncovered == {
        ("dark", None, 100),
        ("dark", None, 200),
        ("flat", "L", 100),
        ("flat", "R", 100),
        ("flat", "L", 200),
    }
    dark = next(
        n
        for n in needs["uncovered_configurations"]
        if n["frame_type"] == "dark" and n["gain"] == 100
    )
    assert (
        dark["exposure_s"] == 300.0 and dark["temperature_c"] == -10.0 and dark["light_count"] == 2
    )

    items = plan_items(admin, observatory)
    flats_l = [i for i in items if i["frame_type"] == "flat" and i["filter"] == "L"]
    assert sorted(i["gain"] for i in flats_l) == [
        100,
        200,
    ]  # the same filter at two gains: two items
    assert all((i["target_count"], i["current_count"], i["remaining"]) == (3, 0, 3) for i in items)

    def flat_l_100() -> dict:
        return next(
            i
            for i in plan_items(admin, observatory)
            if i["frame_type"] == "flat" and i["filter"] == "L" and i["gain"] == 100
        )

    for index in range(2):
        upload_frame(
            admin, observatory, frame_bytes("flat", index=index, filter_name="L", exposure_s=2.0)
        )
        wait_for(
            lambda n=index + 1: flat_l_100()["current_count"] == n, timeout_s=30, what="the flat"
        )
        assert flat_l_100()["remaining"] == 2 - index

    # the third flat reaches the threshold: the job is deferred (no master dark at 2 s),
    # so the plan now asks for that dark as well
    upload_frame(admin, observatory, frame_bytes("flat", index=2, filter_name="L", exposure_s=2.0))
    needs = wait_for(
        lambda: (n := admin.get(f"{API}/needs/{observatory}").json())["deferred"] and n,
        timeout_s=30,
        what="a deferred flat job",
    )
    assert (
        needs["deferred"][0]["reason"]
        == "Flat auto-stacking deferred: no matching master dark available"
    )
    assert needs["deferred"][0]["frame_type"] == "flat"
    prerequisite = [i for i in plan_items(admin, observatory) if i["reason"] == "prerequisite"]
    assert [(i["frame_type"], i["exposure_s"], i["remaining"]) for i in prerequisite] == [
        ("dark", 2.0, 3)
    ]
    assert flat_l_100()["remaining"] == 0


def test_needs_report_expiry_warnings_and_accumulation(admin, system, observatory):
    upload_frame(admin, observatory, frame_bytes("bias", index=0, exposure_s=0.0))
    wait_for(lambda: library(admin, observatory)["total"] == 1, timeout_s=30, what="the bias")
    fresh = upload_master(admin, observatory, master_bytes(seed=4)).json()
    aging = upload_master(admin, observatory, master_bytes(seed=5, temperature_c=-20.0)).json()
    assert admin.get(f"{API}/needs/{observatory}").json()["expiry_warnings"] == []
    # 25 days later the -20 °C dark (max age 30 days) is within 20 % of expiring
    with pymongo.MongoClient(system.config.mongodb_uri) as client:
        client[system.config.mongodb_db]["frames"].update_one(
            {"_id": aging["id"]}, {"$set": {"created_at": datetime.now(UTC) - timedelta(days=25)}}
        )
    needs = admin.get(f"{API}/needs/{observatory}").json()
    assert [(w["master_id"], w["state"], w["max_age_days"]) for w in needs["expiry_warnings"]] == [
        (aging["id"], "expiring", 30)
    ]
    assert fresh["id"] not in str(needs["expiry_warnings"])
    [progress] = needs["accumulation_progress"]
    assert (
        progress["frame_type"],
        progress["count"],
        progress["threshold"],
        progress["percent"],
    ) == ("bias", 1, 10, 10.0)
    assert needs["active_jobs"] == [] and needs["deferred"] == []


def test_roles_on_the_capture_plan(admin, observatory):
    other = create_observatory(admin, unique("obs"))
    roles = callers(admin, observatory, other)
    try:
        assert roles["plugin"].get(f"{API}/capture-plan/{observatory}").status_code == 200
        assert roles["plugin"].get(f"{API}/capture-plan/{other}").status_code == 403
        assert roles["plugin"].get(f"{API}/library/{observatory}").status_code == 403
        assert roles["viewer"].get(f"{API}/capture-plan/{observatory}").status_code == 200
        # a plugin registers frames for its own observatory without naming it
        response = upload_frame(roles["plugin"], None, frame_bytes("dark", index=5))
        assert response.status_code == 202, response.text
        assert response.json()["storage_key"].startswith(f"frames/{observatory}/")
        assert upload_frame(roles["plugin"], other, frame_bytes("dark", index=6)).status_code == 403
    finally:
        roles.close()


def test_health_reports_dependencies_services_and_the_stacker_backlog(admin, system):
    wait_for(
        lambda: len({s["service"] for s in admin.get(f"{API}/health").json()["services"]}) >= 5,
        timeout_s=30,
        what="every service's heartbeat",
    )
    response = admin.get(f"{API}/health")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "ok"
    assert all(report["dependencies"][d]["ok"] for d in ("mongodb", "s3", "nats"))
    services = {s["service"] for s in report["services"] if s["alive"]}
    assert services >= {"gateway", "registry", "scheduler", "lifecycle", "stacker"}
    assert isinstance(report["consumers"]["stacker"]["pending"], int)
    assert report["consumers"]["stacker"]["durable"] == "stacker"


def test_users_tokens_and_revocation(admin, observatory):
    created = admin.post(
        "/api/v1/admin/users",
        json={
            "name": "carol",
            "memberships": [{"observatory_id": observatory, "can_admin": False}],
        },
    )
    assert created.status_code == 201
    user = created.json()
    client = httpx.Client(
        base_url=str(admin.base_url), headers={"Authorization": f"Bearer {user['token']}"}
    )
    try:
        assert client.get(f"{API}/library/{observatory}").status_code == 200
        listed = {u["id"]: u for u in admin.get("/api/v1/admin/users").json()["items"]}
        assert listed[user["id"]]["token_ids"] == [user["token_id"]]
        assert "token" not in listed[user["id"]] and "hash" not in str(listed[user["id"]])
        assert admin.delete(f"/api/v1/admin/tokens/{user['token_id']}").status_code == 204
        response = client.get(f"{API}/library/{observatory}")
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert (
            admin.delete(f"/api/v1/admin/tokens/{user['token_id']}").status_code == 204
        )  # idempotent
        assert admin.delete("/api/v1/admin/tokens/nope").status_code == 404

        fresh = admin.post(f"/api/v1/admin/users/{user['id']}/tokens")
        assert fresh.status_code == 201
        client.headers["Authorization"] = f"Bearer {fresh.json()['token']}"
        assert client.get(f"{API}/library/{observatory}").status_code == 200
        assert admin.post("/api/v1/admin/users/nope/tokens").status_code == 404
    finally:
        client.close()


def test_admin_bodies_are_validated(admin):
    assert (
        admin.post("/api/v1/admin/observatories", json={"id": "Bad Id", "name": "x"}).status_code
        == 400
    )
    assert (
        admin.post("/api/v1/admin/observatories", json={"id": unique("o"), "name": ""}).status_code
        == 400
    )
    assert (
        admin.post(
            "/api/v1/admin/users",
            json={
                "name": "x",
                "memberships": [{"observatory_id": unique("nowhere"), "can_admin": True}],
            },
        ).status_code
        == 404
    )
    assert (
        admin.post(f"/api/v1/admin/observatories/{unique('nowhere')}/plugin-tokens").status_code
        == 404
    )
    existing = create_observatory(admin, unique("obs"))
    assert (
        admin.post("/api/v1/admin/observatories", json={"id": existing, "name": "x"}).status_code
        == 409
    )
