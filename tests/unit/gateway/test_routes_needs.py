"""Summary, needs and capture plan over the fakes, and who may read them."""

from __future__ import annotations

from datetime import timedelta

from calib_core.models import FrameType
from tests.unit.app.library_world import stored
from tests.unit.core import factories as make
from tests.unit.gateway.harness import API, OTHER, OWN, Api

CAMERA = "ZWO ASI294MM Pro"


def in_observatory(build, observatory_id: str, frame_type: FrameType, **overrides):
    frame_id = make.next_id()
    return build(
        frame_type,
        id=frame_id,
        observatory_id=observatory_id,
        storage_key=f"frames/{observatory_id}/{frame_id}.fits",
        camera_name=overrides.pop("camera_name", CAMERA),
        **overrides,
    )


async def test_summary_counts_and_latest_masters(api: Api):
    observatory_id = await api.observatory()
    for frame_type, overrides in (
        *[(FrameType.DARK, {})] * 3,
        *[(FrameType.FLAT, {"filter": "R"})] * 2,
        (FrameType.FLAT, {"filter": "L", "camera_name": "QHY 268M"}),
        (FrameType.LIGHT, {"filter": "R", "exposure_s": 300.0}),
    ):
        await stored(api.world, in_observatory(make.frame, observatory_id, frame_type, **overrides))
    master = await stored(api.world, in_observatory(make.master, observatory_id, FrameType.DARK))

    summary = await api.ok("GET", f"{API}/summary/{observatory_id}")
    assert summary["total_frames"] == 7 and summary["total_masters"] == 1
    cameras = {c["camera_name"]: c for c in summary["cameras"]}
    assert set(cameras) == {CAMERA, "QHY 268M"}
    main = cameras[CAMERA]
    assert main["frames"] == {"dark": 3, "flat": 2, "bias": 0, "light": 1}
    assert main["unclaimed_frames"]["dark"] == 3 and main["masters"]["active"] == 1
    [configuration] = main["configurations"]
    assert configuration["latest_master"]["id"] == master.id
    assert configuration["exposure_s"] == 60.0
    assert cameras["QHY 268M"]["frames"]["flat"] == 1


async def test_needs_report_expiry_warnings_and_accumulation(api: Api):
    observatory_id = await api.observatory()
    now = api.world.now()
    await stored(
        api.world, in_observatory(make.frame, observatory_id, FrameType.BIAS, exposure_s=0.0)
    )
    fresh = await stored(
        api.world, in_observatory(make.master, observatory_id, FrameType.DARK, created_at=now)
    )
    # 25 days old, the -20 °C dark (max age 30 days) is within 20 % of expiring
    aging = await stored(
        api.world,
        in_observatory(
            make.master,
            observatory_id,
            FrameType.DARK,
            temperature_c=-20.0,
            created_at=now - timedelta(days=25),
        ),
    )
    needs = await api.ok("GET", f"{API}/needs/{observatory_id}")
    assert [(w["master_id"], w["state"], w["max_age_days"]) for w in needs["expiry_warnings"]] == [
        (aging.id, "expiring", 30)
    ]
    assert fresh.id not in str(needs["expiry_warnings"])
    [progress] = needs["accumulation_progress"]
    assert (
        progress["frame_type"],
        progress["count"],
        progress["threshold"],
        progress["percent"],
    ) == ("bias", 1, 10, 10.0)
    assert needs["active_jobs"] == [] and needs["deferred"] == []


async def test_the_capture_plan_counts_what_the_lights_still_need(api: Api):
    observatory_id = await api.observatory(min_frames_for_master=3)
    now = api.world.now()
    for gain, filter_name in ((100.0, "L"), (100.0, "R"), (200.0, "L")):
        light = in_observatory(
            make.frame,
            observatory_id,
            FrameType.LIGHT,
            gain=gain,
            filter=filter_name,
            exposure_s=300.0,
            captured_at=now - timedelta(hours=1),
        )
        await stored(api.world, light)
    await stored(
        api.world,
        in_observatory(make.frame, observatory_id, FrameType.FLAT, filter="L", exposure_s=2.0),
    )
    items = (await api.ok("GET", f"{API}/capture-plan/{observatory_id}"))["items"]
    wanted = {(i["frame_type"], i["filter"], i["gain"]): i for i in items}
    assert set(wanted) == {
        ("dark", None, 100),
        ("dark", None, 200),
        ("flat", "L", 100),
        ("flat", "R", 100),
        ("flat", "L", 200),
    }
    assert [
        wanted["flat", "L", 100][k] for k in ("target_count", "current_count", "remaining")
    ] == [
        3,
        1,
        2,
    ]


async def test_roles_on_the_capture_plan(api: Api):
    assert (await api.get(f"{API}/capture-plan/{OWN}", role="plugin")).status_code == 200
    assert (await api.get(f"{API}/capture-plan/{OTHER}", role="plugin")).status_code == 403
    assert (await api.get(f"{API}/library/{OWN}", role="plugin")).status_code == 403
    assert (await api.get(f"{API}/needs/{OWN}", role="plugin")).status_code == 403
    assert (await api.get(f"{API}/capture-plan/{OWN}", role="viewer")).status_code == 200
    assert (await api.get(f"{API}/summary/{OWN}", role="viewer")).status_code == 200
    assert (await api.get(f"{API}/capture-plan/nowhere")).status_code == 404
