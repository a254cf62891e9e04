"""The quality gates' rules (calib_core.quality) over measurements."""

from __future__ import annotations

import pytest

from calib_core.quality import FrameMeasurement, gate_failures
from calib_core.settings import CalibrationSettings

SETTINGS = CalibrationSettings()


def measured(median: float, *, noise: float = 10.0, saturated: float = 0.0, width=100, height=80):
    return FrameMeasurement(width, height, median, noise, saturated, 65535.0)


def darks(*medians: float) -> list[FrameMeasurement]:
    return [measured(m) for m in medians]


def test_a_dark_far_from_the_group_fails_the_level_gate_naming_value_and_threshold():
    failures = gate_failures("dark", darks(500, 501, 499, 500.5, 3500), SETTINGS)
    assert list(failures) == [4]
    assert failures[4] == (
        "dark level gate: median 3500 ADU is 300 robust sigmas from the group's 500.5 ADU"
        " (robust sigma 10 ADU, limit 5)"
    )


def test_a_bias_offset_jump_within_the_limit_passes_and_beyond_it_fails():
    frames = darks(500, 500, 500, 549)  # 4.9 pixel sigmas
    assert gate_failures("bias", frames, SETTINGS) == {}
    strict = CalibrationSettings(gate_sigma=4.0)
    assert list(gate_failures("bias", frames, strict)) == [3]


def test_the_spread_of_the_medians_widens_the_robust_sigma():
    # medians that wander by hundreds of ADU (say, a slow drift) with little pixel noise
    frames = [measured(m, noise=1.0) for m in (100, 300, 500, 700, 900)]
    assert gate_failures("dark", frames, SETTINGS) == {}


def test_two_frames_cannot_tell_which_is_odd():
    assert gate_failures("dark", darks(500, 3500), SETTINGS) == {}


def test_a_frame_of_another_shape_is_held_and_left_out_of_the_level_statistics():
    frames = [*darks(500, 500, 500), measured(90000, width=50, height=40)]
    assert gate_failures("dark", frames, SETTINGS) == {
        3: "shape gate: frame is 50x40, the group's frames are 100x80"
    }


@pytest.mark.parametrize(
    ("median", "saturated", "reason"),
    [
        (
            600.0,
            0.0,
            "flat level gate: median 600 ADU is 0.916% of full scale (65535 ADU),"
            " allowed 2% to 90%",
        ),
        (
            62000.0,
            0.0,
            "flat level gate: median 62000 ADU is 94.6% of full scale (65535 ADU),"
            " allowed 2% to 90%",
        ),
        (30000.0, 0.05, "saturation gate: 5% of the pixels at full scale (65535 ADU), limit 0.1%"),
    ],
)
def test_flat_gates(median, saturated, reason):
    frames = [measured(30000), measured(median, saturated=saturated)]
    assert gate_failures("flat", frames, SETTINGS) == {1: reason}


def test_no_gate_holds_anything_while_gates_are_off():
    off = CalibrationSettings(quality_gates_enabled=False)
    assert gate_failures("dark", darks(500, 501, 499, 3500), off) == {}
    assert gate_failures("flat", [measured(100.0, saturated=0.5)], off) == {}


def test_a_frame_without_finite_pixels_is_held():
    frames = [*darks(500, 500, 500), measured(float("nan"))]
    assert gate_failures("dark", frames, SETTINGS) == {
        3: "pixel gate: the frame has no finite pixel"
    }
