"""Bodies of the administration routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from calib_core.access import Membership
from calib_core.models import Observatory

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ObservatoryIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Name


class ObservatoryList(msgspec.Struct, kw_only=True):
    items: list[Observatory]


class UserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    server_admin: bool = False
    memberships: list[Membership] = []


class UserOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    server_admin: bool
    memberships: list[Membership]
    token_ids: list[str]
    created_at: datetime | None = None


class UserList(msgspec.Struct, kw_only=True):
    items: list[UserOut]


class TokenOut(msgspec.Struct, kw_only=True):
    """A new user: its id and first token (shown once)."""

    id: str
    token: str
    token_id: str


class NewTokenOut(msgspec.Struct, kw_only=True):
    token_id: str
    token: str


class PluginTokenOut(msgspec.Struct, kw_only=True):
    id: str
    token: str
    observatory_id: str
