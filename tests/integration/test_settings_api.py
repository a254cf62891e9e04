"""Calibration settings per observatory (SPEC §3) changed through the real gateway, and
their effect on the decisions the sweep takes afterwards. Reading, changing and refusing
settings is tested over fakes in tests/unit/gateway/test_routes_settings.py."""

from __future__ import annotations

import pytest

from tests.integration.registry_helpers import (
    frame_bytes,
    jobs,
    put_settings,
    register_all,
    wait_registered,
)
from tests.support.system import wait_for


def test_a_lower_threshold_lets_the_sweep_stack_frames_already_there(
    admin, plugin, system, observatory
):
    register_all(plugin, observatory, [frame_bytes("bias", i, exposure_s=0.0) for i in range(3)])
    wait_registered(admin, system.config, observatory, 3)
    assert jobs(admin, observatory) == []  # 3 of the default 10

    put_settings(admin, observatory, min_frames_for_master=3)
    [job] = wait_for(lambda: jobs(admin, observatory), timeout_s=30, what="the sweep's job")
    assert job["trigger"] == "sweep" and len(job["frame_ids"]) == 3
    assert job["settings"]["min_frames_for_master"] == 3


def test_a_wider_temperature_tolerance_groups_frames_together(admin, plugin, system, observatory):
    put_settings(admin, observatory, min_frames_for_master=3)
    temperatures = [-10.0, -11.5, -13.0]  # span 3 °C: two groups at the default 2 °C
    register_all(
        plugin,
        observatory,
        [frame_bytes("dark", i, temperature_c=t) for i, t in enumerate(temperatures)],
    )
    frames = wait_registered(admin, system.config, observatory, 3)
    assert jobs(admin, observatory) == []

    put_settings(admin, observatory, temperature_tolerance_c=5.0)
    [job] = wait_for(
        lambda: jobs(admin, observatory), timeout_s=30, what="a job for the one wide group"
    )
    assert sorted(job["frame_ids"]) == sorted(f["id"] for f in frames)
    assert job["temperature_c"] == pytest.approx(sum(temperatures) / 3)
