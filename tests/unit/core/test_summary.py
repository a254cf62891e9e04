"""SPEC §8 GET /summary: counts and current masters per camera and configuration."""

from __future__ import annotations

from datetime import timedelta

from calib_core.models import FrameType, MasterStatus
from calib_core.summary import CountRow, summarize
from tests.unit.core.factories import NOW, OBS, master


def test_counts_and_latest_masters_per_camera_and_configuration():
    counts = [
        CountRow(
            camera_name="cam A", frame_type=FrameType.DARK, is_master=False, claimed=True, count=10
        ),
        CountRow(camera_name="cam A", frame_type=FrameType.DARK, is_master=False, count=3),
        CountRow(camera_name="cam A", frame_type=FrameType.LIGHT, is_master=False, count=7),
        CountRow(
            camera_name="cam A",
            frame_type=FrameType.DARK,
            is_master=True,
            status=MasterStatus.SUPERSEDED,
            count=1,
        ),
        CountRow(
            camera_name="cam A",
            frame_type=FrameType.DARK,
            is_master=True,
            status=MasterStatus.ACTIVE,
            count=2,
        ),
        CountRow(camera_name="cam B", frame_type=FrameType.FLAT, is_master=False, count=2),
    ]
    newer = master(
        FrameType.DARK,
        camera_name="cam A",
        temperature_c=-10.0,
        created_at=NOW - timedelta(hours=1),
    )
    colder = master(
        FrameType.DARK, camera_name="cam A", temperature_c=-20.0, created_at=NOW - timedelta(days=2)
    )
    old = master(FrameType.DARK, camera_name="cam A", status=MasterStatus.SUPERSEDED)
    summary = summarize(OBS, counts, [newer, colder, old], NOW)

    assert summary.total_frames == 22 and summary.total_masters == 3
    a, b = summary.cameras
    assert a.camera_name == "cam A" and b.camera_name == "cam B"
    assert a.frames["dark"] == 13 and a.unclaimed_frames["dark"] == 3 and a.frames["light"] == 7
    assert a.masters == {"active": 2, "expired": 0, "superseded": 1}
    [configuration] = a.configurations
    assert configuration.frame_type == FrameType.DARK and configuration.exposure_s == 60.0
    assert configuration.latest_master.id == newer.id
    assert [m.id for m in configuration.current_masters] == [newer.id, colder.id]
    assert b.configurations == [] and b.unclaimed_frames["flat"] == 2
