"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from calib_core.access import Membership
from calib_core.models import Frame, Observatory, Rejection, StackJob

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ObservatoryIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Name


class UserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    server_admin: bool = False
    memberships: list[Membership] = []


class TokenOut(msgspec.Struct, kw_only=True):
    id: str
    token: str
    token_id: str


class NewTokenOut(msgspec.Struct, kw_only=True):
    token_id: str
    token: str


class UserOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    server_admin: bool
    memberships: list[Membership]
    token_ids: list[str]
    created_at: datetime | None = None


class UserList(msgspec.Struct, kw_only=True):
    items: list[UserOut]


class ObservatoryList(msgspec.Struct, kw_only=True):
    items: list[Observatory]


class PluginTokenOut(msgspec.Struct, kw_only=True):
    id: str
    token: str
    observatory_id: str


class LibraryPage(msgspec.Struct, kw_only=True):
    items: list[Frame]
    page: int
    limit: int
    total: int


class Components(msgspec.Struct, kw_only=True):
    master_id: str
    items: list[Frame]


class JobList(msgspec.Struct, kw_only=True):
    items: list[StackJob]


class RejectionList(msgspec.Struct, kw_only=True):
    items: list[Rejection]


class Accepted(msgspec.Struct, kw_only=True):
    event_id: str
    storage_key: str


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
        return {
            k: v
            for k, v in msgspec.structs.asdict(self).items()
            if k not in ("force", "observatory_id")
        }
