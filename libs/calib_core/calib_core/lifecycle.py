"""Keeping the library current and clean (SPEC §5 supersession, §6 lifecycle): pure rules.

Ages are measured from a master's ``created_at`` (its ``registered_at`` for old records)
and every limit is "more than": a master exactly ``dark_max_age_days`` old is not yet
expired, and a frame whose master is exactly ``individual_frame_retention_days`` old
is still kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from calib_core.models import Frame, MasterStatus
from calib_core.settings import CalibrationSettings
from calib_core.supersession import superseded_by

#: "Expiring soon" = within this fraction of the max age (SPEC §6).
EXPIRING_SOON_FRACTION = 0.2
#: Objects without a record are left alone this long: an upload is in the bucket before
#: its registration (or a master's object before its record) is stored.
ORPHAN_MIN_AGE = timedelta(days=1)


class ExpiryState(StrEnum):
    CURRENT = "current"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"


class MaintenanceTask(StrEnum):
    EXPIRY_CHECK = "expiry-check"
    RETENTION_CLEANUP = "retention-cleanup"


class ExpiryReport(msgspec.Struct, kw_only=True):
    """What an expiry check did (``POST /maintenance/expiry-check``)."""

    observatory_id: str | None
    observatories: int
    checked: int
    expired: int
    expiring_soon: int
    cache_entries_invalidated: int
    finished_at: datetime


class RetentionReport(msgspec.Struct, kw_only=True):
    """What a retention cleanup did (``POST /maintenance/retention-cleanup``)."""

    observatory_id: str | None
    observatories: int
    frames_deleted: int
    masters_deleted: int
    orphans_deleted: int
    resumed_deletions: int
    finished_at: datetime
    #: pending uploads (SPEC §8 ``POST /uploads``) removed once over (expired plus the grace)
    pending_uploads_removed: int = 0


def max_age(master: Frame, settings: CalibrationSettings) -> timedelta:
    return timedelta(days=settings.max_age_days(master.frame_type))


def expires_at(master: Frame, settings: CalibrationSettings) -> datetime:
    return master.creation_time + max_age(master, settings)


def expiry_state(master: Frame, settings: CalibrationSettings, now: datetime) -> ExpiryState:
    """Expired past the type's max age (or once marked expired); expiring soon in the
    last 20 % of it. For the needs view's expiry warnings and calibration warnings."""
    age = now - master.creation_time
    limit = max_age(master, settings)
    if master.status == MasterStatus.EXPIRED or age > limit:
        return ExpiryState.EXPIRED
    if age > limit * (1 - EXPIRING_SOON_FRACTION):
        return ExpiryState.EXPIRING_SOON
    return ExpiryState.CURRENT


def masters_to_expire(
    masters: Iterable[Frame], settings: CalibrationSettings, now: datetime
) -> list[Frame]:
    """Active masters past their type's max age: they become ``expired`` (still used)."""
    return [
        m
        for m in masters
        if m.is_master
        and m.status == MasterStatus.ACTIVE
        and now - m.creation_time > max_age(m, settings)
    ]


def supersession(
    new: Frame, masters: Sequence[Frame], settings: CalibrationSettings
) -> list[tuple[Frame, Frame]]:
    """(old, replacement) pairs once ``new`` is stored next to ``masters``.

    Normally the current masters ``new`` supersedes. If a newer current master already
    covers ``new``'s configuration and temperature (two masters recorded out of order),
    ``new`` itself is the one replaced, so the library converges on the newest master
    whatever order the ``master.created`` events are handled in.
    """
    newer = [m for m in masters if m.id != new.id and superseded_by(m, [new], settings)]
    if newer:
        return [(new, max(newer, key=lambda m: (m.creation_time, m.id)))]
    return [(old, new) for old in superseded_by(new, masters, settings)]


def frames_past_retention(
    masters: Iterable[Frame], settings: CalibrationSettings, now: datetime
) -> set[str]:
    """Ids of individual frames whose latest master (of any status) was created more
    than ``individual_frame_retention_days`` ago. Frames never stacked are kept."""
    latest: dict[str, datetime] = {}
    for master in masters:
        for frame_id in master.components or []:
            if frame_id not in latest or master.creation_time > latest[frame_id]:
                latest[frame_id] = master.creation_time
    cutoff = now - timedelta(days=settings.individual_frame_retention_days)
    return {frame_id for frame_id, at in latest.items() if at < cutoff}


def masters_past_retention(
    masters: Iterable[Frame], settings: CalibrationSettings, now: datetime
) -> list[Frame]:
    """Superseded masters superseded more than ``master_retention_days`` ago."""
    cutoff = now - timedelta(days=settings.master_retention_days)
    return [
        m
        for m in masters
        if m.is_master
        and m.status == MasterStatus.SUPERSEDED
        and (m.superseded_at or m.creation_time) < cutoff
    ]


def old_enough_for_orphan(modified: datetime | None, now: datetime) -> bool:
    """An object no record names is an orphan once it is more than a day old (an
    unknown age counts as old)."""
    return modified is None or now - modified > ORPHAN_MIN_AGE


def maintenance_due(last_run: datetime | None, now: datetime, interval_s: float) -> bool:
    """A daily task is due when it never ran or its last run is an interval old."""
    return last_run is None or now - last_run >= timedelta(seconds=interval_s)
