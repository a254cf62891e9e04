"""SPEC §5: when a group is stacked and from which frames."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_core.events import StackRequested
from calib_core.grouping import group_frames
from calib_core.matching import find_master, prerequisite_type
from calib_core.models import FrameType, JobStatus, JobTrigger, MasterStatus
from calib_core.settings import CalibrationSettings
from calib_core.triggers import (
    CCD_DARK_DEFERRED_REASON,
    FLAT_DEFERRED_REASON,
    MAX_FRAMES_PER_MASTER,
    by_configuration,
    find_group,
    frame_time,
    group_matching,
    minimum_frames,
    needs_master,
    plan_job,
    repeats_failure,
    retained_frames,
    stack_request,
    triggered_groups,
    triggering_frames,
    unclaimed_count,
)
from tests.unit.core.factories import NOW, OBS, frame, frames, group, job, master, settings_dict

DEFAULT = CalibrationSettings()


def ago(**delta):
    return NOW - timedelta(**delta)


# ---- threshold -------------------------------------------------------------------------


def test_nine_unclaimed_frames_do_not_trigger():
    g = group(frames(9))
    assert unclaimed_count(g, DEFAULT, NOW) == 9
    assert not needs_master(g, DEFAULT, NOW)


def test_ten_unclaimed_frames_trigger():
    g = group(frames(10))
    assert needs_master(g, DEFAULT, NOW)


@pytest.mark.parametrize("threshold", [3, 25, 100])
def test_threshold_follows_the_setting(threshold):
    s = CalibrationSettings(min_frames_for_master=threshold)
    assert not needs_master(group(frames(threshold - 1)), s, NOW)
    assert needs_master(group(frames(threshold)), s, NOW)


def test_claimed_frames_do_not_count_but_are_retained():
    claimed = frames(15, master_id="mold", captured_at=ago(days=2))
    fresh = frames(9, captured_at=ago(hours=1))
    g = group(claimed + fresh)
    assert unclaimed_count(g, DEFAULT, NOW) == 9
    assert not needs_master(g, DEFAULT, NOW)
    retained = retained_frames(g, DEFAULT, NOW)
    assert {f.id for f in retained} == {f.id for f in claimed + fresh}
    g.frames.append(frame(captured_at=ago(minutes=5)))
    assert needs_master(g, DEFAULT, NOW)


def test_stale_unclaimed_frames_do_not_count():
    s = CalibrationSettings(dark_max_age_days=30)
    old = frames(10, captured_at=ago(days=31))
    g = group(old)
    assert unclaimed_count(g, s, NOW) == 0
    assert not needs_master(g, s, NOW)


# ---- frame set -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "field", "days"),
    [
        ("dark", "dark_max_age_days", 30),
        ("flat", "flat_max_age_days", 7),
        ("bias", "bias_max_age_days", 90),
    ],
)
def test_frames_older_than_the_type_max_age_are_excluded(kind, field, days):
    s = CalibrationSettings(**{field: days})
    inside = frame(kind, captured_at=ago(days=days) + timedelta(seconds=1))
    edge = frame(kind, captured_at=ago(days=days))
    outside = frame(kind, captured_at=ago(days=days, seconds=1))
    retained = retained_frames(group([inside, edge, outside]), s, NOW)
    assert [f.id for f in retained] == [inside.id, edge.id]


def test_flat_max_age_is_used_for_flats_not_dark_age():
    s = CalibrationSettings(flat_max_age_days=7, dark_max_age_days=30)
    f = frame("flat", captured_at=ago(days=8))
    assert retained_frames(group([f]), s, NOW) == []


def test_registered_at_used_when_capture_time_missing():
    f = frame(captured_at=None, registered_at=ago(days=40))
    assert frame_time(f) == ago(days=40)
    assert retained_frames(group([f]), DEFAULT, NOW) == []
    g = frame(captured_at=None, registered_at=ago(days=1))
    assert retained_frames(group([g]), DEFAULT, NOW) == [g]


def test_retained_frames_newest_first():
    members = [frame(captured_at=ago(hours=h)) for h in (5, 1, 3, 2, 4)]
    retained = retained_frames(group(members), DEFAULT, NOW)
    assert [frame_time(f) for f in retained] == sorted(
        (frame_time(f) for f in members), reverse=True
    )


def test_at_most_200_newest_frames():
    members = [frame(captured_at=ago(minutes=i)) for i in range(250)]
    retained = retained_frames(group(list(reversed(members))), DEFAULT, NOW)
    assert len(retained) == MAX_FRAMES_PER_MASTER == 200
    assert [f.id for f in retained] == [f.id for f in members[:200]]


def test_equal_times_are_ordered_deterministically():
    members = frames(5, captured_at=ago(hours=1))
    a = retained_frames(group(members), DEFAULT, NOW)
    b = retained_frames(group(list(reversed(members))), DEFAULT, NOW)
    assert [f.id for f in a] == [f.id for f in b]


# ---- minimum frames for a manual creation ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "force", "expected"),
    [
        ("sigma_clip", False, 10),
        ("mean", False, 10),
        ("median", False, 10),
        ("sigma_clip", True, 3),
        ("mean", True, 1),
        ("median", True, 1),
    ],
)
def test_minimum_frames(method, force, expected):
    assert minimum_frames(CalibrationSettings(stacking_method=method), force) == expected


def test_minimum_frames_without_force_follows_threshold():
    assert minimum_frames(CalibrationSettings(min_frames_for_master=42), False) == 42
    assert (
        minimum_frames(CalibrationSettings(min_frames_for_master=42, stacking_method="mean"), True)
        == 1
    )


# ---- plan_job ------------------------------------------------------------------------------


def test_plan_job_fields():
    s = CalibrationSettings(min_frames_for_master=5)
    claimed = frames(3, master_id="mold", captured_at=ago(days=2), temperature_c=-10.0)
    fresh = frames(5, captured_at=ago(hours=1), temperature_c=-9.0)
    stale = frame(captured_at=ago(days=60), temperature_c=-10.0)
    [g] = group_frames(claimed + fresh + [stale], s)
    job = plan_job(g, s, observatory_id=OBS, trigger=JobTrigger.REGISTRATION, now=NOW)
    assert job.observatory_id == OBS
    assert job.frame_type == FrameType.DARK
    assert job.config_key == g.config_key
    assert job.group_key == g.group_key
    assert job.configuration == g.config
    assert job.temperature_c == pytest.approx(g.temperature_c)
    assert job.trigger == JobTrigger.REGISTRATION
    assert job.status == JobStatus.QUEUED
    assert job.frame_ids == [f.id for f in retained_frames(g, s, NOW)]
    assert set(job.frame_ids) == {f.id for f in claimed + fresh}
    assert set(job.frame_ids[:5]) == {f.id for f in fresh}  # newest first
    assert job.settings == settings_dict(s)
    assert CalibrationSettings(**job.settings) == s
    assert job.created_at == job.updated_at == NOW
    assert job.attempts == 0 and job.progress == 0.0
    assert job.error is None and job.master_id is None


def test_plan_job_ids_are_unique():
    g = group(frames(3))
    a = plan_job(g, DEFAULT, observatory_id=OBS, trigger=JobTrigger.SWEEP, now=NOW)
    b = plan_job(g, DEFAULT, observatory_id=OBS, trigger=JobTrigger.SWEEP, now=NOW)
    assert a.id != b.id


# ---- registration trigger over a batch of new frames -------------------------------------


def test_triggered_groups_only_for_groups_of_the_new_frames():
    full = frames(10, temperature_c=-10.0)
    other_full = frames(10, temperature_c=5.0)
    groups = group_frames(full + other_full, DEFAULT)
    assert triggered_groups(groups, {full[0].id}, DEFAULT, NOW) == [find_group(groups, full[0].id)]
    assert triggered_groups(groups, {"unknown"}, DEFAULT, NOW) == []


def test_triggered_groups_threshold_boundary():
    members = frames(10)
    assert triggered_groups(group_frames(members[:9], DEFAULT), {members[8].id}, DEFAULT, NOW) == []
    found = triggered_groups(group_frames(members, DEFAULT), {members[9].id}, DEFAULT, NOW)
    assert len(found) == 1 and len(found[0].frames) == 10


def test_triggered_groups_one_entry_per_group_however_many_new_frames_it_holds():
    members = frames(12)
    found = triggered_groups(group_frames(members, DEFAULT), {f.id for f in members}, DEFAULT, NOW)
    assert len(found) == 1


def test_triggered_groups_several_groups_of_one_batch():
    cold, warm = frames(10, temperature_c=-10.0), frames(10, temperature_c=5.0)
    groups = group_frames(cold + warm, DEFAULT)
    found = triggered_groups(groups, {cold[0].id, warm[0].id}, DEFAULT, NOW)
    assert {g.group_key for g in found} == {g.group_key for g in groups}


def test_triggered_groups_count_only_unclaimed_frames():
    claimed = frames(10, master_id="m1")
    new = frames(3)
    assert triggered_groups(group_frames(claimed + new, DEFAULT), {new[0].id}, DEFAULT, NOW) == []


# ---- finding groups --------------------------------------------------------------------------


def test_find_group():
    members = [frame(temperature_c=-10.0), frame(temperature_c=0.0), frame("flat")]
    groups = group_frames(members, DEFAULT)
    for f in members:
        found = find_group(groups, f.id)
        assert found is not None and f in found.frames
    assert find_group(groups, "nope") is None


def _request(**fields):
    base = {
        "observatory_id": OBS,
        "frame_type": "dark",
        "camera_name": "ZWO ASI2600MM",
        "gain": 100.0,
        "offset": 50.0,
        "binning": "1x1",
        "readout_mode": None,
        "exposure_s": 60.0,
        "filter": None,
        "temperature_c": None,
        "force": False,
    }
    base.update(fields)
    return base


def test_group_matching_picks_configuration():
    members = (
        [frame(exposure_s=60.0) for _ in range(3)]
        + [frame(exposure_s=120.0) for _ in range(5)]
        + [frame(gain=0.0) for _ in range(7)]
    )
    groups = group_frames(members, DEFAULT)
    chosen = group_matching(groups, _request(), DEFAULT)
    assert (
        chosen is not None
        and chosen.config["exposure_s"] == 60.0
        and chosen.config["gain"] == 100.0
    )
    chosen = group_matching(groups, _request(exposure_s=120), DEFAULT)
    assert chosen is not None and chosen.config["exposure_s"] == 120.0
    assert group_matching(groups, _request(exposure_s=30.0), DEFAULT) is None
    assert group_matching(groups, _request(camera_name="Other"), DEFAULT) is None


def test_group_matching_rounds_a_cmos_dark_exposure_like_grouping():
    groups = group_frames(frames(3, exposure_s=59.7), DEFAULT)
    assert group_matching(groups, _request(exposure_s=59.7), DEFAULT) is groups[0]


def test_group_matching_temperature_nearest_within_tolerance():
    s = CalibrationSettings(temperature_tolerance_c=2.0)
    members = (
        [frame(temperature_c=-20.0) for _ in range(3)]
        + [frame(temperature_c=-10.0) for _ in range(2)]
        + [frame(temperature_c=0.0) for _ in range(9)]
    )
    groups = group_frames(members, s)
    assert len(groups) == 3
    chosen = group_matching(groups, _request(temperature_c=-11.0), s)
    assert chosen is not None and chosen.temperature_c == pytest.approx(-10.0)
    chosen = group_matching(groups, _request(temperature_c=-18.5), s)
    assert chosen is not None and chosen.temperature_c == pytest.approx(-20.0)
    assert group_matching(groups, _request(temperature_c=-5.0), s) is None
    chosen = group_matching(groups, _request(temperature_c=-12.0), s)
    assert chosen is not None and chosen.temperature_c == pytest.approx(-10.0)


def test_group_matching_without_temperature_takes_the_largest_group():
    members = [frame(temperature_c=-20.0) for _ in range(3)] + [
        frame(temperature_c=0.0) for _ in range(5)
    ]
    chosen = group_matching(group_frames(members, DEFAULT), _request(), DEFAULT)
    assert chosen is not None and len(chosen.frames) == 5


def test_group_matching_frame_type_and_filter():
    members = [frame("flat", filter="Ha"), frame("flat", filter="L"), frame("dark"), frame("bias")]
    groups = group_frames(members, DEFAULT)
    flat = group_matching(
        groups, _request(frame_type="flat", filter="Ha", exposure_s=None), DEFAULT
    )
    assert flat is not None and flat.frame_type == FrameType.FLAT and flat.config["filter"] == "Ha"
    bias = group_matching(groups, _request(frame_type="bias", exposure_s=None), DEFAULT)
    assert bias is not None and bias.frame_type == FrameType.BIAS
    assert group_matching(groups, _request(frame_type="flat", filter="OIII"), DEFAULT) is None


def test_group_matching_other_hardware_fields():
    members = [frame(binning="2x2"), frame(readout_mode="HDR"), frame(offset=10.0)]
    groups = group_frames(members, DEFAULT)
    assert group_matching(groups, _request(binning="2x2"), DEFAULT).frames == [members[0]]
    assert group_matching(groups, _request(readout_mode="HDR"), DEFAULT).frames == [members[1]]
    assert group_matching(groups, _request(offset=10), DEFAULT).frames == [members[2]]
    assert group_matching(groups, _request(binning="3x3"), DEFAULT) is None


# ---- deferral and resumption ------------------------------------------------------------------


def test_the_deferral_messages_are_the_spec_wording():
    assert FLAT_DEFERRED_REASON == "Flat auto-stacking deferred: no matching master dark available"
    assert (
        CCD_DARK_DEFERRED_REASON == "Dark auto-stacking deferred: no matching master bias available"
    )


@pytest.mark.parametrize(
    ("kind", "camera", "needed", "matching"),
    [
        (FrameType.FLAT, "CMOS", FrameType.DARK, {"exposure_s": 2.0}),
        (FrameType.FLAT, "CCD", FrameType.DARK, {"exposure_s": 300.0}),
        (FrameType.DARK, "CCD", FrameType.BIAS, {"exposure_s": 0.0, "temperature_c": 20.0}),
    ],
)
def test_a_job_waits_for_its_master_and_resumes_once_one_matches(kind, camera, needed, matching):
    """Deferred while no current master of the needed type matches the group's frames;
    the same decision finds the master once it exists (what resumption re-checks)."""
    s = CalibrationSettings(camera_type=camera)
    sample = frame(kind, exposure_s=2.0)
    assert prerequisite_type(kind, s) == needed
    unrelated = [
        master(needed, gain=0.0, **matching),
        master(needed, status=MasterStatus.SUPERSEDED, **matching),
    ]
    assert find_master(unrelated, frame_type=needed, target=sample, settings=s) is None
    arrived = master(needed, **matching)
    assert (
        find_master([*unrelated, arrived], frame_type=needed, target=sample, settings=s) is arrived
    )


def test_cmos_darks_and_bias_never_wait():
    s = CalibrationSettings(camera_type="CMOS")
    assert prerequisite_type(FrameType.DARK, s) is None
    assert prerequisite_type(FrameType.BIAS, s) is None


def test_an_automatic_job_does_not_repeat_a_failure_on_the_same_frames():
    members = frames(10)
    g = group(members)
    failed = job(status=JobStatus.FAILED, frame_ids=[f.id for f in members])
    assert repeats_failure(g, failed, CalibrationSettings(), NOW)
    assert not repeats_failure(g, None, CalibrationSettings(), NOW)
    # a frame the failed job never saw is worth another try
    assert not repeats_failure(group([*members, *frames(1)]), failed, CalibrationSettings(), NOW)
    # fewer frames (the bad one deleted) still only repeats: that takes an administrator's retry
    assert repeats_failure(group(members[1:]), failed, CalibrationSettings(), NOW)


def test_only_individual_calibration_frames_trigger_by_observatory():
    dark, flat, light = frame(FrameType.DARK), frame(FrameType.FLAT), frame(FrameType.LIGHT)
    elsewhere = frame(FrameType.BIAS, observatory_id="obs-2")
    found = triggering_frames([dark, light, master(), flat, elsewhere])
    assert found == {OBS: [dark, flat], "obs-2": [elsewhere]}


def test_frames_by_configuration_follow_the_settings():
    darks = [frame(exposure_s=30.2), frame(exposure_s=29.9), frame(exposure_s=60.0)]
    cmos = by_configuration(darks, DEFAULT)  # a CMOS dark's exposure, to the second
    ccd = by_configuration(darks, CalibrationSettings(camera_type="CCD"))  # scaled: any
    assert list(cmos.values()) == [darks[:2], darks[2:]]
    assert list(ccd.values()) == [darks]


def test_a_stack_request_is_for_the_next_attempt_and_named_by_it():
    assert stack_request(job(attempts=0)) == (
        StackRequested(job_id="job0001", observatory_id=OBS, attempt=1),
        "job0001-1",
    )
    assert stack_request(job(attempts=2))[1] == "job0001-3"
