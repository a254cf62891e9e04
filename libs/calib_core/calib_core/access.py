"""Who may do what (SPEC §8 permissions table), as pure decisions over a principal; the
accounts and tokens a principal is resolved from."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

import msgspec


class Capability(StrEnum):
    VIEW = "view"  # library, summary, needs, capture plan, frames, downloads
    MANAGE = "manage"  # upload/create masters, delete frames, settings, view/retry jobs
    REGISTER = "register"  # register frames (plugins and managers)
    CAPTURE_PLAN = "read the capture plan of"  # members, and the observatory's plugin
    SERVER = "server"  # cache, maintenance, health, delete failed jobs, user admin


class Membership(msgspec.Struct, kw_only=True):
    observatory_id: str
    can_admin: bool = False


class Principal(msgspec.Struct, kw_only=True):
    """The authenticated caller: a user (maybe server admin) or an observatory's plugin."""

    token_id: str
    user_id: str | None = None
    name: str = ""
    server_admin: bool = False
    memberships: list[Membership] = []
    plugin_observatory: str | None = None

    def visible_observatories(self) -> set[str] | None:
        """Observatories this caller may see; None means all."""
        if self.server_admin:
            return None
        if self.plugin_observatory:
            return {self.plugin_observatory}
        return {m.observatory_id for m in self.memberships}


def allowed(
    principal: Principal, capability: Capability, observatory_id: str | None = None
) -> bool:
    if principal.server_admin:
        return True
    if capability == Capability.SERVER or observatory_id is None:
        return False
    if principal.plugin_observatory is not None:
        # a plugin registers frames and reads what it should capture next, for its
        # observatory only: it may not browse or download the library (SPEC §8)
        return principal.plugin_observatory == observatory_id and capability in (
            Capability.REGISTER,
            Capability.CAPTURE_PLAN,
        )
    for membership in principal.memberships:
        if membership.observatory_id == observatory_id:
            return capability in (Capability.VIEW, Capability.CAPTURE_PLAN) or membership.can_admin
    return False


def allowed_somewhere(principal: Principal, capability: Capability) -> bool:
    """Whether ``principal`` may do ``capability`` for at least one observatory: what can
    be decided before a request body naming the observatory is read (SPEC §12)."""
    if principal.server_admin:
        return True
    candidates = [principal.plugin_observatory, *(m.observatory_id for m in principal.memberships)]
    return any(
        observatory_id is not None and allowed(principal, capability, observatory_id)
        for observatory_id in candidates
    )


class User(msgspec.Struct, kw_only=True):
    """A person's account: a server admin, or a member of some observatories."""

    id: str
    name: str
    server_admin: bool = False
    memberships: list[Membership] = []
    created_at: datetime | None = None


class ApiToken(msgspec.Struct, kw_only=True):
    """A bearer token as stored: its hash, never the token. It belongs to a user or, as a
    plugin token, to an observatory."""

    id: str
    hash: str
    user_id: str | None = None
    plugin_observatory: str | None = None
    revoked: bool = False
    created_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal_of(token: ApiToken, user: User | None) -> Principal | None:
    """Who a live token authenticates: its observatory's plugin, or its user (None when
    the user no longer exists)."""
    if token.plugin_observatory:
        return Principal(
            token_id=token.id, name="plugin", plugin_observatory=token.plugin_observatory
        )
    if user is None:
        return None
    return Principal(
        token_id=token.id,
        user_id=user.id,
        name=user.name,
        server_admin=user.server_admin,
        memberships=list(user.memberships),
    )
