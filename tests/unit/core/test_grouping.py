"""SPEC §4: configurations, temperature (and rotation) clusters, frame groups."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from calib_core.grouping import (
    cluster,
    cluster_angles,
    config_key,
    configuration,
    exposure_second,
    group_frames,
    mean_angle,
)
from calib_core.models import FrameType
from calib_core.settings import CalibrationSettings
from tests.unit.core.factories import frame

CMOS = CalibrationSettings()
CCD = CalibrationSettings(camera_type="CCD")


def memberships(groups):
    return {g.group_key: sorted(f.id for f in g.frames) for g in groups}


def groups_of(groups, frames):
    """For each frame (by position) the index of the group it lands in."""
    where = {f.id: i for i, g in enumerate(groups) for f in g.frames}
    return [where[f.id] for f in frames]


# ---- configuration -------------------------------------------------------------------


def test_cmos_dark_configuration_has_rounded_exposure_and_no_filter():
    config = configuration(frame("dark", exposure_s=59.6, filter="Ha"), CMOS)
    assert config == {
        "frame_type": "dark",
        "camera_name": "ZWO ASI2600MM",
        "gain": 100.0,
        "offset": 50.0,
        "binning": "1x1",
        "readout_mode": None,
        "exposure_s": 60.0,
    }


def test_ccd_dark_configuration_has_no_exposure():
    config = configuration(frame("dark", exposure_s=300.0), CCD)
    assert "exposure_s" not in config
    assert config["frame_type"] == "dark"


def test_flat_configuration_has_filter_but_no_exposure_or_rotation():
    config = configuration(frame("flat", filter="Ha", exposure_s=2.0, rotation_deg=30.0), CMOS)
    assert config["filter"] == "Ha"
    assert "exposure_s" not in config
    assert "rotation_deg" not in config


def test_bias_configuration_has_neither_exposure_nor_filter():
    config = configuration(frame("bias", exposure_s=0.001), CMOS)
    assert set(config) == {"frame_type", "camera_name", "gain", "offset", "binning", "readout_mode"}


@pytest.mark.parametrize(
    ("exposure", "second"),
    [
        (59.6, 60.0),
        (60.4, 60.0),
        (60.0, 60.0),
        (60.5, 61.0),
        (0.5, 1.0),
        (1.5, 2.0),
        (2.5, 3.0),
        (0.49, 0.0),
        (0.001, 0.0),
        (299.99, 300.0),
    ],
)
def test_exposure_rounds_half_up_to_the_second(exposure, second):
    assert exposure_second(exposure) == second


def test_config_key_is_stable_and_order_free():
    a = {"frame_type": "dark", "gain": 100.0, "offset": None, "exposure_s": 60.0}
    b = {"exposure_s": 60, "offset": None, "gain": 100, "frame_type": "dark"}
    assert config_key(a) == config_key(b) == "exposure_s=60|frame_type=dark|gain=100|offset=-"
    assert config_key({**a, "gain": 101.0}) != config_key(a)
    assert config_key({**a, "gain": 100.5}) == "exposure_s=60|frame_type=dark|gain=100.5|offset=-"


# ---- CMOS / CCD darks, flats ------------------------------------------------------------


def test_cmos_darks_close_exposures_group_together():
    frames = [
        frame("dark", exposure_s=59.6),
        frame("dark", exposure_s=60.4),
        frame("dark", exposure_s=60.0),
    ]
    groups = group_frames(frames, CMOS)
    assert len(groups) == 1
    assert groups[0].config["exposure_s"] == 60.0
    assert len(groups[0].frames) == 3


def test_cmos_darks_one_second_apart_are_separate():
    frames = [frame("dark", exposure_s=60.0), frame("dark", exposure_s=61.0)]
    groups = group_frames(frames, CMOS)
    assert len(groups) == 2
    assert sorted(g.config["exposure_s"] for g in groups) == [60.0, 61.0]


def test_cmos_darks_at_1_5_and_2_5_seconds_are_separate():
    groups = group_frames([frame("dark", exposure_s=1.5), frame("dark", exposure_s=2.5)], CMOS)
    assert sorted(g.config["exposure_s"] for g in groups) == [2.0, 3.0]


def test_ccd_darks_ignore_exposure():
    frames = [frame("dark", exposure_s=e) for e in (10.0, 60.0, 300.0)]
    groups = group_frames(frames, CCD)
    assert len(groups) == 1
    assert len(groups[0].frames) == 3


def test_flats_are_keyed_by_filter():
    frames = [frame("flat", filter="L"), frame("flat", filter="Ha"), frame("flat", filter="L")]
    groups = group_frames(frames, CMOS)
    by_filter = {g.config["filter"]: len(g.frames) for g in groups}
    assert by_filter == {"L": 2, "Ha": 1}


def test_flats_ignore_exposure():
    groups = group_frames([frame("flat", exposure_s=1.0), frame("flat", exposure_s=3.7)], CMOS)
    assert len(groups) == 1


def test_darks_ignore_filter():
    groups = group_frames([frame("dark", filter="L"), frame("dark", filter="Ha")], CMOS)
    assert len(groups) == 1


def test_lights_are_ignored():
    frames = [frame("light"), frame("dark"), frame("light", filter="Ha")]
    groups = group_frames(frames, CMOS)
    assert [len(g.frames) for g in groups] == [1]
    assert groups[0].frame_type == FrameType.DARK


def test_types_never_mix():
    frames = [frame("dark"), frame("bias"), frame("flat")]
    groups = group_frames(frames, CMOS)
    assert sorted(g.frame_type.value for g in groups) == ["bias", "dark", "flat"]


@pytest.mark.parametrize(
    ("field", "a", "b"),
    [
        ("gain", 100.0, 101.0),
        ("gain", 100.0, None),
        ("offset", 50.0, 30.0),
        ("offset", None, 30.0),
        ("binning", "1x1", "2x2"),
        ("readout_mode", "High Gain", "Low Noise"),
        ("readout_mode", None, "Low Noise"),
        ("camera_name", "Cam A", "Cam B"),
    ],
)
@pytest.mark.parametrize("kind", ["dark", "flat", "bias"])
def test_hardware_fields_separate_configurations(field, a, b, kind):
    frames = [frame(kind, **{field: a}), frame(kind, **{field: a}), frame(kind, **{field: b})]
    groups = group_frames(frames, CMOS)
    assert len(groups) == 2
    assert len({g.config_key for g in groups}) == 2
    assert sorted(len(g.frames) for g in groups) == [1, 2]


# ---- temperature clusters ----------------------------------------------------------------


def test_temperatures_within_tolerance_cluster_together():
    s = CalibrationSettings(temperature_tolerance_c=2.0)
    frames = [frame("dark", temperature_c=t) for t in (-10.0, -9.0, -8.0)]
    groups = group_frames(frames, s)
    assert len(groups) == 1
    assert groups[0].temperature_c == pytest.approx(-9.0)


def test_temperature_clusters_span_at_most_the_tolerance():
    s = CalibrationSettings(temperature_tolerance_c=2.0)
    frames = [frame("dark", temperature_c=t) for t in (-10.0, -9.0, -7.9, -7.0)]
    groups = group_frames(frames, s)
    assert [sorted(f.temperature_c for f in g.frames) for g in groups] == [
        [-10.0, -9.0],
        [-7.9, -7.0],
    ]


def test_distant_temperatures_are_separate_groups_of_one_configuration():
    frames = [frame("dark", temperature_c=-10.0), frame("dark", temperature_c=0.0)]
    groups = group_frames(frames, CMOS)
    assert len(groups) == 2
    assert groups[0].config_key == groups[1].config_key
    assert groups[0].group_key != groups[1].group_key


def test_frames_without_temperature_form_their_own_cluster():
    frames = [
        frame("dark", temperature_c=None),
        frame("dark", temperature_c=-10.0),
        frame("dark", temperature_c=None),
    ]
    groups = group_frames(frames, CMOS)
    assert len(groups) == 2
    no_temp = [g for g in groups if g.temperature_c is None]
    assert len(no_temp) == 1
    assert {f.id for f in no_temp[0].frames} == {frames[0].id, frames[2].id}


def test_tiny_tolerance_still_gives_distinct_group_keys():
    s = CalibrationSettings(temperature_tolerance_c=0.1)
    frames = [frame("dark", temperature_c=t) for t in (-10.04, -9.93, -9.82)]
    groups = group_frames(frames, s)
    assert len(groups) == 3
    assert len({g.group_key for g in groups}) == 3


def test_group_key_contains_config_key():
    for g in group_frames([frame("dark"), frame("flat"), frame("bias", temperature_c=None)], CMOS):
        assert g.group_key.startswith(g.config_key + "|")


# ---- rotation (flats) ---------------------------------------------------------------------


def test_rotation_ignored_by_default():
    frames = [frame("flat", rotation_deg=r) for r in (0.0, 90.0, 180.0)]
    groups = group_frames(frames, CMOS)
    assert len(groups) == 1


@pytest.mark.parametrize("mode", ["preferred", "required"])
def test_rotation_clusters_flats_when_it_matters(mode):
    s = CalibrationSettings(rotation_matching=mode, rotation_tolerance_deg=1.0)
    frames = [frame("flat", rotation_deg=r) for r in (10.0, 10.5, 11.0, 12.5, 90.0)]
    groups = group_frames(frames, s)
    assert [sorted(f.rotation_deg for f in g.frames) for g in groups] == [
        [10.0, 10.5, 11.0],
        [12.5],
        [90.0],
    ]
    assert len({g.config_key for g in groups}) == 1
    assert len({g.group_key for g in groups}) == 3


def test_rotation_never_splits_darks():
    s = CalibrationSettings(rotation_matching="required")
    groups = group_frames([frame("dark", rotation_deg=0.0), frame("dark", rotation_deg=90.0)], s)
    assert len(groups) == 1


def test_rotation_then_temperature():
    s = CalibrationSettings(
        rotation_matching="required", rotation_tolerance_deg=1.0, temperature_tolerance_c=1.0
    )
    frames = [
        frame("flat", rotation_deg=10.0, temperature_c=-10.0),
        frame("flat", rotation_deg=10.0, temperature_c=5.0),
        frame("flat", rotation_deg=50.0, temperature_c=-10.0),
    ]
    groups = group_frames(frames, s)
    assert len(groups) == 3


def test_flats_without_rotation_are_their_own_cluster():
    s = CalibrationSettings(rotation_matching="preferred")
    frames = [frame("flat", rotation_deg=None), frame("flat", rotation_deg=10.0)]
    groups = group_frames(frames, s)
    assert len(groups) == 2
    assert any(g.rotation_deg is None and len(g.frames) == 1 for g in groups)


def test_rotation_clusters_across_zero_degrees():
    s = CalibrationSettings(rotation_matching="required", rotation_tolerance_deg=1.0)
    frames = [frame("flat", rotation_deg=r) for r in (359.8, 0.1, 0.3, 180.0)]
    groups = group_frames(frames, s)
    members = sorted(sorted(f.rotation_deg for f in g.frames) for g in groups)
    assert members == [[0.1, 0.3, 359.8], [180.0]]
    wrapped = next(g for g in groups if len(g.frames) == 3)
    assert wrapped.rotation_deg == pytest.approx(0.0667, abs=1e-3)


def test_zero_rotation_tolerance_gives_distinct_group_keys():
    s = CalibrationSettings(rotation_matching="required", rotation_tolerance_deg=0.0)
    frames = [frame("flat", rotation_deg=r) for r in (10.01, 10.02, 10.03)]
    groups = group_frames(frames, s)
    assert len(groups) == 3
    assert len({g.group_key for g in groups}) == 3


def test_mean_angle():
    assert mean_angle([10.0, 12.0]) == pytest.approx(11.0)
    assert mean_angle([359.8, 0.2]) == pytest.approx(0.0, abs=1e-9)
    assert mean_angle([350.0, 20.0]) == pytest.approx(5.0)
    assert mean_angle([None, 90.0]) == pytest.approx(90.0)
    assert mean_angle([]) is None
    assert mean_angle([None]) is None


def test_cluster_angles_matches_cluster_without_wrap():
    values = [5.0, 5.5, 7.0, 100.0]
    assert cluster_angles(values, lambda v: v, 1.0) == cluster(values, lambda v: v, 1.0)


def test_cluster_keeps_input_order_inside_and_ascending_between():
    values = [3.0, 1.0, 10.0, 2.0, None, 11.0]
    assert cluster(values, lambda v: v, 2.0) == [[3.0, 1.0, 2.0], [10.0, 11.0], [None]]


# ---- properties ----------------------------------------------------------------------------

temperature = st.one_of(st.none(), st.floats(-30, 30, allow_nan=False).map(lambda t: round(t, 2)))
rotation = st.one_of(
    st.none(), st.floats(0, 360, allow_nan=False, exclude_max=True).map(lambda r: round(r, 2))
)
frame_spec = st.fixed_dictionaries(
    {
        "frame_type": st.sampled_from(["dark", "flat", "bias", "light"]),
        "exposure_s": st.sampled_from([59.6, 60.0, 60.4, 61.0, 120.0, 2.5]),
        "gain": st.sampled_from([0.0, 100.0]),
        "filter": st.sampled_from(["L", "Ha"]),
        "temperature_c": temperature,
        "rotation_deg": rotation,
    }
)
settings_spec = st.builds(
    CalibrationSettings,
    camera_type=st.sampled_from(["CMOS", "CCD"]),
    temperature_tolerance_c=st.sampled_from([0.1, 0.5, 2.0, 5.0]),
    rotation_matching=st.sampled_from(["ignore", "preferred", "required"]),
    rotation_tolerance_deg=st.sampled_from([0.0, 1.0, 10.0]),
)

FAST = hyp_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _circular_span(angles):
    angles = sorted(a % 360 for a in angles)
    if len(angles) < 2:
        return 0.0
    gaps = [b - a for a, b in zip(angles, angles[1:], strict=False)] + [
        angles[0] + 360 - angles[-1]
    ]
    return 360.0 - max(gaps)


@FAST
@given(specs=st.lists(frame_spec, max_size=40), settings=settings_spec, seed=st.integers(0, 10_000))
def test_grouping_is_deterministic_and_order_independent(specs, settings, seed):
    frames = [frame(**spec) for spec in specs]
    shuffled = list(frames)
    random.Random(seed).shuffle(shuffled)
    first = group_frames(frames, settings)
    again = group_frames(frames, settings)
    other = group_frames(shuffled, settings)
    assert memberships(first) == memberships(again) == memberships(other)
    assert [g.group_key for g in first] == [g.group_key for g in other]
    assert len({g.group_key for g in first}) == len(first)


@FAST
@given(specs=st.lists(frame_spec, max_size=40), settings=settings_spec)
def test_every_calibration_frame_in_exactly_one_group(specs, settings):
    frames = [frame(**spec) for spec in specs]
    groups = group_frames(frames, settings)
    placed = [f.id for g in groups for f in g.frames]
    assert sorted(placed) == sorted(f.id for f in frames if f.frame_type != FrameType.LIGHT)
    assert all(g.frames for g in groups)


@FAST
@given(specs=st.lists(frame_spec, max_size=40), settings=settings_spec)
def test_clusters_respect_tolerances_and_share_a_configuration(specs, settings):
    frames = [frame(**spec) for spec in specs]
    for g in group_frames(frames, settings):
        temps = [f.temperature_c for f in g.frames]
        assert all(t is None for t in temps) or all(t is not None for t in temps)
        if temps and temps[0] is not None:
            assert max(temps) - min(temps) <= settings.temperature_tolerance_c + 1e-9
        assert len({config_key(configuration(f, settings)) for f in g.frames}) == 1
        if g.frame_type == FrameType.FLAT and settings.rotation_matching != "ignore":
            rotations = [f.rotation_deg for f in g.frames]
            assert all(r is None for r in rotations) or all(r is not None for r in rotations)
            if rotations and rotations[0] is not None:
                assert _circular_span(rotations) <= settings.rotation_tolerance_deg + 1e-6


@FAST
@given(
    values=st.lists(st.one_of(st.none(), st.floats(-50, 50, allow_nan=False)), max_size=30),
    tolerance=st.floats(0, 10, allow_nan=False),
)
def test_cluster_properties(values, tolerance):
    items = list(enumerate(values))
    clusters = cluster(items, lambda item: item[1], tolerance)
    assert sorted(i for c in clusters for i, _ in c) == list(range(len(values)))
    for c in clusters:
        known = [v for _, v in c if v is not None]
        if known:
            assert len(known) == len(c)
            assert max(known) - min(known) <= tolerance + 1e-9
    reversed_clusters = cluster(list(reversed(items)), lambda item: item[1], tolerance)
    assert sorted(sorted(i for i, _ in c) for c in clusters) == sorted(
        sorted(i for i, _ in c) for c in reversed_clusters
    )
