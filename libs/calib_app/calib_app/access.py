"""Server administration (SPEC §8): observatories, users, their bearer tokens and the
observatories' plugin tokens, and resolving a token to the caller it authenticates.

A token is a random secret shown once when issued; only its hash is stored.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from calib_app.errors import ConflictError, NotFoundError
from calib_app.ports import AccountRepository, Clock, ObservatoryRepository
from calib_core.access import ApiToken, Membership, Principal, User, principal_of, token_hash
from calib_core.models import Observatory

BOOTSTRAP_USER_ID = "bootstrap-admin"


@dataclass(frozen=True)
class Access:
    accounts: AccountRepository
    observatories: ObservatoryRepository
    clock: Clock


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str
    """The secret itself: shown once, never stored."""


@dataclass(frozen=True)
class Account:
    user: User
    token_ids: list[str]
    """Of its live tokens."""


def new_token() -> str:
    return "calib_" + secrets.token_urlsafe(32)


async def authenticate(access: Access, token: str) -> Principal | None:
    """The caller a token authenticates; None for an unknown or revoked one."""
    stored = await access.accounts.live_token(token_hash(token))
    if stored is None:
        return None
    user = await access.accounts.user(stored.user_id) if stored.user_id else None
    return principal_of(stored, user)


async def issue_token(
    access: Access,
    *,
    user_id: str | None = None,
    plugin_observatory: str | None = None,
    token: str | None = None,
) -> IssuedToken:
    """Store a new token (``token``, or a fresh random one) for a user or a plugin."""
    token = token or new_token()
    token_id = await access.accounts.add_token(
        ApiToken(
            id=uuid.uuid4().hex,
            hash=token_hash(token),
            user_id=user_id,
            plugin_observatory=plugin_observatory,
            created_at=access.clock.now(),
        )
    )
    return IssuedToken(id=token_id, token=token)


async def _known(access: Access, observatory_id: str) -> None:
    if await access.observatories.get(observatory_id) is None:
        raise NotFoundError(f"observatory '{observatory_id}' not found")


async def create_observatory(access: Access, observatory_id: str, name: str) -> Observatory:
    """A new observatory; its id is checked at the edge (``OBSERVATORY_ID_PATTERN``)."""
    observatory = Observatory(id=observatory_id, name=name, created_at=access.clock.now())
    if not await access.observatories.create(observatory):
        raise ConflictError(f"observatory '{observatory_id}' already exists")
    return observatory


async def create_user(
    access: Access, *, name: str, server_admin: bool, memberships: Sequence[Membership]
) -> tuple[User, IssuedToken]:
    """A new user, member of existing observatories only, and its first token."""
    for membership in memberships:
        await _known(access, membership.observatory_id)
    user = User(
        id=uuid.uuid4().hex,
        name=name,
        server_admin=server_admin,
        memberships=list(memberships),
        created_at=access.clock.now(),
    )
    await access.accounts.save_user(user)
    return user, await issue_token(access, user_id=user.id)


async def user_token(access: Access, user_id: str) -> IssuedToken:
    """A new token for an existing user (after revoking a leaked one, say)."""
    if await access.accounts.user(user_id) is None:
        raise NotFoundError(f"user '{user_id}' not found")
    return await issue_token(access, user_id=user_id)


async def plugin_token(access: Access, observatory_id: str) -> IssuedToken:
    await _known(access, observatory_id)
    return await issue_token(access, plugin_observatory=observatory_id)


async def accounts(access: Access) -> list[Account]:
    """Every user with the ids of its live tokens (never a token or its hash)."""
    live = await access.accounts.live_token_ids()
    return [
        Account(user=user, token_ids=sorted(live.get(user.id, [])))
        for user in await access.accounts.users()
    ]


async def revoke_token(access: Access, token_id: str) -> None:
    if not await access.accounts.revoke(token_id):
        raise NotFoundError(f"token '{token_id}' not found")


async def bootstrap_admin(access: Access, token: str) -> None:
    """Make ``token`` (``CALIB_BOOTSTRAP_ADMIN_TOKEN``) a server admin's, live even if it
    was revoked."""
    await access.accounts.save_user(
        User(
            id=BOOTSTRAP_USER_ID,
            name="bootstrap admin",
            server_admin=True,
            created_at=access.clock.now(),
        )
    )
    await issue_token(access, user_id=BOOTSTRAP_USER_ID, token=token)
    await access.accounts.reinstate(token_hash(token))
