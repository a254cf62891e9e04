"""SPEC §5–§6: supersession order, expiry, retention, orphans, the daily timer (pure rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_core.lifecycle import (
    ExpiryState,
    expires_at,
    expiry_state,
    frames_past_retention,
    maintenance_due,
    masters_past_retention,
    masters_to_expire,
    old_enough_for_orphan,
    supersession,
)
from calib_core.models import MasterStatus
from calib_core.settings import CalibrationSettings
from tests.unit.core.factories import NOW, frame, master

SETTINGS = CalibrationSettings()  # dark 30, flat 7, bias 90 days; frames 30, masters 180 days
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


def aged(kind: str, age: timedelta, **overrides):
    return master(kind, created_at=NOW - age, **overrides)


# ---- expiry --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "days"), [("dark", 30), ("flat", 7), ("bias", 90)])
def test_a_master_expires_only_when_older_than_its_types_max_age(kind, days):
    exactly = aged(kind, days * DAY)
    assert expiry_state(exactly, SETTINGS, NOW) == ExpiryState.EXPIRING_SOON
    assert masters_to_expire([exactly], SETTINGS, NOW) == []
    older = aged(kind, days * DAY + SECOND)
    assert expiry_state(older, SETTINGS, NOW) == ExpiryState.EXPIRED
    assert masters_to_expire([older], SETTINGS, NOW) == [older]
    assert expires_at(older, SETTINGS) == older.created_at + days * DAY


def test_expiring_soon_is_the_last_fifth_of_the_max_age():
    assert expiry_state(aged("dark", 24 * DAY), SETTINGS, NOW) == ExpiryState.CURRENT
    assert expiry_state(aged("dark", 24 * DAY + SECOND), SETTINGS, NOW) == ExpiryState.EXPIRING_SOON


def test_the_max_age_follows_the_observatory_settings():
    settings = CalibrationSettings(dark_max_age_days=2)
    assert masters_to_expire([aged("dark", 2 * DAY + SECOND)], settings, NOW)
    assert not masters_to_expire([aged("dark", 2 * DAY + SECOND)], SETTINGS, NOW)


def test_only_active_masters_become_expired():
    old = 100 * DAY
    expired = aged("dark", old, status=MasterStatus.EXPIRED)
    superseded = aged("dark", old, status=MasterStatus.SUPERSEDED)
    individual = frame("dark", created_at=NOW - old)
    assert masters_to_expire([expired, superseded, individual], SETTINGS, NOW) == []
    assert (
        expiry_state(aged("dark", DAY, status=MasterStatus.EXPIRED), SETTINGS, NOW)
        == ExpiryState.EXPIRED
    )


# ---- supersession --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [MasterStatus.ACTIVE, MasterStatus.EXPIRED])
def test_a_new_master_replaces_the_current_one_active_or_expired(status):
    old = aged("dark", 40 * DAY, status=status)
    new = master("dark", created_at=NOW)
    assert supersession(new, [new, old], SETTINGS) == [(old, new)]


def test_masters_at_other_temperatures_coexist():
    new = master("dark", created_at=NOW, temperature_c=-10.0)
    cold = aged("dark", DAY, temperature_c=-20.0)
    close = aged("dark", DAY, temperature_c=-11.5)
    assert supersession(new, [new, cold, close], SETTINGS) == [(close, new)]


def test_a_master_recorded_after_a_newer_one_is_itself_replaced():
    """Events handled out of order: the library still converges on the newest master."""
    older = aged("dark", DAY)
    newer = master("dark", created_at=NOW)
    assert supersession(older, [older, newer], SETTINGS) == [(older, newer)]


def test_replaying_supersession_changes_nothing_more():
    old = aged("dark", DAY, status=MasterStatus.SUPERSEDED)
    new = master("dark", created_at=NOW)
    assert supersession(new, [new, old], SETTINGS) == []


# ---- retention -----------------------------------------------------------------------------------


def test_frames_go_when_their_latest_master_is_older_than_the_retention():
    a, b, c, never = (frame("dark") for _ in range(4))
    old = aged("dark", 30 * DAY + SECOND, components=[a.id, b.id], status=MasterStatus.SUPERSEDED)
    recent = aged("dark", 10 * DAY, components=[b.id])
    boundary = aged("dark", 30 * DAY, components=[c.id])
    due = frames_past_retention([old, recent, boundary], SETTINGS, NOW)
    assert due == {a.id}  # b is in a recent master, c's is exactly 30 days old, never unstacked


def test_the_frame_retention_follows_the_settings():
    f = frame("flat")
    m = aged("flat", 3 * DAY, components=[f.id])
    assert frames_past_retention(
        [m], CalibrationSettings(individual_frame_retention_days=2), NOW
    ) == {f.id}
    assert frames_past_retention([m], SETTINGS, NOW) == set()


def test_superseded_masters_go_when_superseded_longer_than_the_retention():
    gone = aged(
        "dark", 400 * DAY, status=MasterStatus.SUPERSEDED, superseded_at=NOW - 180 * DAY - SECOND
    )
    kept = aged("dark", 400 * DAY, status=MasterStatus.SUPERSEDED, superseded_at=NOW - 180 * DAY)
    active = aged("dark", 400 * DAY)
    expired = aged("dark", 400 * DAY, status=MasterStatus.EXPIRED)
    assert masters_past_retention([gone, kept, active, expired], SETTINGS, NOW) == [gone]


def test_objects_become_orphans_after_a_day():
    assert not old_enough_for_orphan(NOW - DAY, NOW)
    assert old_enough_for_orphan(NOW - DAY - SECOND, NOW)
    assert old_enough_for_orphan(None, NOW)


def test_a_daily_task_is_due_when_it_never_ran_or_ran_an_interval_ago():
    assert maintenance_due(None, NOW, 86400)
    assert not maintenance_due(NOW - DAY + SECOND, NOW, 86400)
    assert maintenance_due(NOW - DAY, NOW, 86400)
