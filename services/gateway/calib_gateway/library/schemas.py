"""Bodies of the library's routes."""

from __future__ import annotations

import msgspec

from calib_core.models import Frame


class LibraryPage(msgspec.Struct, kw_only=True):
    items: list[Frame]
    page: int
    limit: int
    total: int


class Components(msgspec.Struct, kw_only=True):
    master_id: str
    items: list[Frame]


class Accepted(msgspec.Struct, kw_only=True):
    event_id: str
    storage_key: str
