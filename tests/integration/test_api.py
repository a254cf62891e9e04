"""The HTTP API of SPEC §8 against the running system, where it depends on the other
services: an uploaded master superseding its predecessor and described by the lifecycle
service, the capture plan following registrations and a deferred job, the health report
of every service. The routes themselves are tested over fakes in tests/unit/gateway."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.integration.api_helpers import (
    API,
    CAMERA,
    frame_bytes,
    library,
    master_bytes,
    put_settings,
    upload_frame,
    upload_master,
)
from tests.support.system import wait_for


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
    assert needs["deferred"][0]["reason"] == (
        "Flat auto-stacking deferred: no matching master dark available (flat exposure 2 s)"
    )
    assert needs["deferred"][0]["frame_type"] == "flat"
    prerequisite = [i for i in plan_items(admin, observatory) if i["reason"] == "prerequisite"]
    assert [(i["frame_type"], i["exposure_s"], i["remaining"]) for i in prerequisite] == [
        ("dark", 2.0, 3)
    ]
    assert flat_l_100()["remaining"] == 0


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
