"""SPEC §9: needs and the capture plan, from realistic libraries."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from calib_core.models import FrameType, JobStatus, MasterStatus
from calib_core.needs import (
    accumulation_progress,
    assess,
    capture_plan,
    expiry_warnings,
    uncovered_configurations,
)
from calib_core.settings import CalibrationSettings
from tests.unit.core.factories import NOW, OBS, frame, frames, job, master

CMOS = CalibrationSettings()
CCD = CalibrationSettings(camera_type="CCD")


def light(**overrides):
    values = {"exposure_s": 300.0, "filter": "L", "temperature_c": -10.0, "gain": 100.0}
    values.update(overrides)
    return frame(FrameType.LIGHT, **values)


def kinds(needs):
    return sorted((n.frame_type.value, n.filter, n.exposure_s, n.temperature_c) for n in needs)


def plan(individual, masters=(), jobs=(), settings=CMOS):
    return capture_plan(OBS, list(individual), list(masters), list(jobs), settings, NOW).items


def test_a_light_without_masters_needs_a_dark_at_its_exposure_and_temperature_and_a_flat():
    needs = uncovered_configurations([light(), light(temperature_c=-10.3)], [], CMOS, NOW)
    assert kinds(needs) == [("dark", None, 300.0, -10.15), ("flat", "L", None, -10.15)]
    assert all(n.light_count == 2 and n.reason == "uncovered" for n in needs)
    assert needs[0].camera_name == "ZWO ASI2600MM" and needs[0].gain == 100.0


def test_a_dark_of_another_exposure_or_temperature_does_not_cover_the_light():
    lights = [light()]
    wrong_exposure = master(FrameType.DARK, exposure_s=120.0, gain=100.0)
    too_warm = master(FrameType.DARK, exposure_s=300.0, gain=100.0, temperature_c=-5.0)
    assert ("dark", None, 300.0, -10.0) in kinds(
        uncovered_configurations(lights, [wrong_exposure, too_warm], CMOS, NOW)
    )
    matching = master(FrameType.DARK, exposure_s=300.4, gain=100.0, temperature_c=-9.0)
    assert kinds(uncovered_configurations(lights, [matching], CMOS, NOW)) == [
        ("flat", "L", None, -10.0)
    ]


def test_lights_at_two_temperatures_need_two_darks():
    needs = uncovered_configurations(
        [light(temperature_c=-10.0), light(temperature_c=-20.0)], [], CMOS, NOW
    )
    assert [n.temperature_c for n in needs if n.frame_type == FrameType.DARK] == [-20.0, -10.0]


def test_uncovered_flats_per_filter_and_per_rotation_when_rotation_matters():
    lights = [
        light(filter="L", rotation_deg=0.2),
        light(filter="L", rotation_deg=90.0),
        light(filter="R", rotation_deg=0.4),
    ]
    ignore = [
        n for n in uncovered_configurations(lights, [], CMOS, NOW) if n.frame_type == FrameType.FLAT
    ]
    assert [(n.filter, n.rotation_deg) for n in ignore] == [("L", None), ("R", None)]

    required = CalibrationSettings(rotation_matching="required")
    flats = [
        n
        for n in uncovered_configurations(lights, [], required, NOW)
        if n.frame_type == FrameType.FLAT
    ]
    assert [(n.filter, n.rotation_deg) for n in flats] == [("L", 0.2), ("L", 90.0), ("R", 0.4)]
    # a flat at 0° covers the L lights at 0.2° but not those at 90°
    flat_l = master(FrameType.FLAT, filter="L", rotation_deg=0.0, gain=100.0, settings=required)
    flats = [
        n
        for n in uncovered_configurations(lights, [flat_l], required, NOW)
        if n.frame_type == FrameType.FLAT
    ]
    assert [(n.filter, n.rotation_deg) for n in flats] == [("L", 90.0), ("R", 0.4)]


def test_the_same_filter_at_two_gains_is_two_items():
    items = plan([light(gain=100.0), light(gain=200.0)])
    flats = [i for i in items if i.frame_type == FrameType.FLAT]
    assert [(i.filter, i.gain) for i in flats] == [("L", 100.0), ("L", 200.0)]
    assert len([i for i in items if i.frame_type == FrameType.DARK]) == 2


def test_remaining_counts_down_as_frames_arrive():
    lights = [light()]
    library = list(lights)

    def flat_item():
        return next(i for i in plan(library) if i.frame_type == FrameType.FLAT)

    item = flat_item()
    assert (item.target_count, item.current_count, item.remaining) == (10, 0, 10)
    library += frames(4, FrameType.FLAT, filter="L", gain=100.0, exposure_s=2.0)
    assert (flat_item().current_count, flat_item().remaining) == (4, 6)
    # other gain, other filter, already claimed or too old: not progress towards this item
    library += [
        frame(FrameType.FLAT, filter="L", gain=200.0),
        frame(FrameType.FLAT, filter="R", gain=100.0),
        frame(FrameType.FLAT, filter="L", gain=100.0, master_id="m-old"),
        frame(FrameType.FLAT, filter="L", gain=100.0, captured_at=NOW - timedelta(days=8)),
    ]
    assert flat_item().remaining == 6
    library += frames(7, FrameType.FLAT, filter="L", gain=100.0, exposure_s=2.0)
    assert (flat_item().current_count, flat_item().remaining) == (11, 0)


def test_flats_without_a_matching_dark_add_a_dark_at_the_flat_exposure():
    lights = [light()]
    flats = frames(10, FrameType.FLAT, filter="L", gain=100.0, exposure_s=2.0)
    dark_300 = master(FrameType.DARK, exposure_s=300.0, gain=100.0)
    items = plan([*lights, *flats], masters=[dark_300])
    darks = [i for i in items if i.frame_type == FrameType.DARK]
    assert [(i.exposure_s, i.reason, i.remaining) for i in darks] == [(2.0, "prerequisite", 10)]
    flat = next(i for i in items if i.frame_type == FrameType.FLAT)
    assert flat.remaining == 0 and flat.reason == "uncovered"


def test_a_deferred_flat_job_asks_for_its_dark_even_without_lights():
    flats = frames(10, FrameType.FLAT, filter="Ha", exposure_s=5.0)
    deferred = job(
        FrameType.FLAT,
        status=JobStatus.DEFERRED,
        frame_ids=[f.id for f in flats],
        deferred_reason="Flat auto-stacking deferred: no matching master dark available",
    )
    items = plan(flats, jobs=[deferred])
    assert [(i.frame_type.value, i.exposure_s, i.temperature_c) for i in items] == [
        ("dark", 5.0, -10.0)
    ]


def test_a_deferred_flat_job_of_two_exposures_asks_only_for_the_missing_dark():
    flats = frames(5, FrameType.FLAT, filter="Ha", exposure_s=5.0)
    flats += frames(5, FrameType.FLAT, filter="Ha", exposure_s=9.0)
    dark_5 = master(FrameType.DARK, exposure_s=5.0)
    deferred = job(
        FrameType.FLAT,
        status=JobStatus.DEFERRED,
        frame_ids=[f.id for f in flats],
        deferred_reason=(
            "Flat auto-stacking deferred: no matching master dark available (flat exposure 9 s)"
        ),
    )
    items = plan(flats, masters=[dark_5], jobs=[deferred])
    assert [(i.frame_type.value, i.exposure_s, i.reason) for i in items] == [
        ("dark", 9.0, "prerequisite")
    ]


def test_ccd_lights_need_a_bias_and_a_dark_of_any_exposure():
    items = plan([light()], settings=CCD)
    assert [(i.frame_type.value, i.exposure_s) for i in items] == [
        ("bias", None),
        ("dark", None),
        ("flat", None),
    ]
    assert items[0].temperature_c is None
    # CCD darks without a matching bias cannot be stacked: the bias comes first
    darks = frames(10, FrameType.DARK, exposure_s=600.0, gain=100.0)
    bias = next(i for i in plan([light(), *darks], settings=CCD) if i.frame_type == FrameType.BIAS)
    assert bias.reason == "uncovered" and bias.remaining == 10


def test_old_lights_need_nothing():
    assert plan([light(captured_at=NOW - timedelta(days=31))]) == []


def test_an_expired_master_still_calibrates_but_is_planned_for_replacement():
    lights = [light()]
    old_dark = master(
        FrameType.DARK, exposure_s=300.0, gain=100.0, created_at=NOW - timedelta(days=40)
    )
    flat = master(FrameType.FLAT, filter="L", gain=100.0)
    assert uncovered_configurations(lights, [old_dark, flat], CMOS, NOW) == []
    items = plan(lights, masters=[old_dark, flat])
    assert [(i.frame_type.value, i.reason) for i in items] == [("dark", "expired")]


def test_expiry_warnings_flag_expired_and_expiring_masters():
    fresh = master(FrameType.DARK, created_at=NOW - timedelta(days=20))
    expiring = master(FrameType.DARK, created_at=NOW - timedelta(days=25))
    too_old = master(FrameType.DARK, created_at=NOW - timedelta(days=31))
    marked = master(FrameType.FLAT, status=MasterStatus.EXPIRED, created_at=NOW - timedelta(days=1))
    gone = master(
        FrameType.DARK, status=MasterStatus.SUPERSEDED, created_at=NOW - timedelta(days=60)
    )
    warnings = expiry_warnings([fresh, expiring, too_old, marked, gone], CMOS, NOW)
    assert [(w.master_id, w.state) for w in warnings] == [
        (too_old.id, "expired"),
        (expiring.id, "expiring"),
        (marked.id, "expired"),
    ]
    assert warnings[1].age_days == 25.0 and warnings[1].max_age_days == 30
    assert warnings[1].expires_at == expiring.created_at + timedelta(days=30)


def test_accumulation_progress_lists_groups_below_threshold():
    library = [
        *frames(4, FrameType.DARK, exposure_s=60.0),
        *frames(10, FrameType.DARK, exposure_s=120.0),
        *frames(3, FrameType.BIAS, master_id="m1"),
        *frames(1, FrameType.BIAS),
    ]
    entries = accumulation_progress(library, CMOS, NOW)
    assert [
        (e.frame_type.value, e.configuration.get("exposure_s"), e.count, e.percent) for e in entries
    ] == [("dark", 60.0, 4, 40.0), ("bias", None, 1, 10.0)]


def test_assess_reports_deferred_and_active_jobs():
    deferred = job(FrameType.FLAT, id="j1", status=JobStatus.DEFERRED, deferred_reason="no dark")
    running = job(FrameType.DARK, id="j2", status=JobStatus.RUNNING, progress=0.5)
    done = job(FrameType.DARK, id="j3", status=JobStatus.SUCCEEDED)
    needs = assess(OBS, [light()], [], [deferred, running, done], CMOS, NOW)
    assert [(j.job_id, j.reason) for j in needs.deferred] == [("j1", "no dark")]
    assert [(j.job_id, j.progress) for j in needs.active_jobs] == [("j2", 0.5)]
    assert len(needs.uncovered_configurations) == 2
    encoded = msgspec.json.decode(msgspec.json.encode(needs))
    assert set(encoded) >= {
        "uncovered_configurations",
        "accumulation_progress",
        "expiry_warnings",
        "deferred",
        "active_jobs",
    }
