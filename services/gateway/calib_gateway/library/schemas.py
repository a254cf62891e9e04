"""Bodies of the library's routes."""

from __future__ import annotations

from typing import Annotated

import msgspec

from calib_core.models import Frame, StackJob

MAX_RELEASED = 500


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


class ReleaseIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    frame_ids: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=200)]],
        msgspec.Meta(min_length=1, max_length=MAX_RELEASED),
    ]


class Released(msgspec.Struct, kw_only=True):
    released: list[str]
    """The frames that were held and are released."""
    jobs: list[StackJob]
    """The stacking jobs their release queued."""
