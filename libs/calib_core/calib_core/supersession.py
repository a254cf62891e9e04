"""Which current masters a new master replaces (SPEC §5 supersession)."""

from __future__ import annotations

from collections.abc import Sequence

from calib_core.models import CURRENT_MASTER_STATUSES, Frame, FrameType
from calib_core.settings import CalibrationSettings
from calib_core.tolerance import angle_within, within


def _created(master: Frame) -> tuple[float, str]:
    """Order of creation (uploaded or old records may lack ``created_at``)."""
    return (master.creation_time.timestamp(), master.id)


def superseded_by(
    new: Frame, masters: Sequence[Frame], settings: CalibrationSettings
) -> list[Frame]:
    """Current masters of ``new``'s configuration, older than it, at a temperature within
    tolerance (and for rotation-matched flats, a rotation within tolerance). Masters at
    other temperatures coexist."""
    replaced = []
    for old in masters:
        if old.id == new.id or old.status not in CURRENT_MASTER_STATUSES:
            continue
        if old.config_key != new.config_key or old.observatory_id != new.observatory_id:
            continue
        if _created(old) > _created(new):
            continue
        if not within(old.temperature_c, new.temperature_c, settings.temperature_tolerance_c):
            continue
        if (
            new.frame_type == FrameType.FLAT
            and settings.rotation_matching != "ignore"
            and not angle_within(
                old.rotation_deg, new.rotation_deg, settings.rotation_tolerance_deg
            )
        ):
            continue
        replaced.append(old)
    return replaced
