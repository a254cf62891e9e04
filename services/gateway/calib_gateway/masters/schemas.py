"""Bodies of the masters' routes."""

from __future__ import annotations

from typing import Any

import msgspec


class CreateMasterIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    observatory_id: str
    frame_type: str
    camera_name: str | None = None
    gain: float | None = None
    offset: float | None = None
    binning: str | None = None
    readout_mode: str | None = None
    exposure_s: float | None = None
    filter: str | None = None
    temperature_c: float | None = None
    force: bool = False

    def group_request(self) -> dict[str, Any]:
        """The group it names: every field but ``force`` and ``observatory_id``."""
        return {
            k: v
            for k, v in msgspec.structs.asdict(self).items()
            if k not in ("force", "observatory_id")
        }
