"""Server administration over the fakes: users, tokens, plugin tokens, revocation, the
bootstrap admin, and resolving a token to its caller."""

from __future__ import annotations

import pytest

from calib_app import access
from calib_app.access import BOOTSTRAP_USER_ID
from calib_app.errors import ConflictError, NotFoundError
from calib_core.access import Membership, Principal, token_hash
from tests.unit.core.factories import OBS


async def test_a_new_user_token_authenticates_as_that_user(admin):
    member = Membership(observatory_id=OBS, can_admin=True)
    user, issued = await access.create_user(
        admin, name="carol", server_admin=False, memberships=[member]
    )
    assert issued.token.startswith("calib_") and len(issued.token) > 40
    assert await access.authenticate(admin, issued.token) == Principal(
        token_id=issued.id, user_id=user.id, name="carol", memberships=[member]
    )
    assert user.created_at == admin.clock.now()


async def test_only_a_hash_of_a_token_is_stored(admin):
    _, issued = await access.create_user(admin, name="dan", server_admin=False, memberships=[])
    stored = admin.accounts.token_documents.find_one({"_id": issued.id})
    assert stored["hash"] == token_hash(issued.token)
    assert issued.token not in str(stored)


async def test_unknown_forged_and_revoked_tokens_authenticate_nobody(admin):
    _, issued = await access.create_user(admin, name="erin", server_admin=True, memberships=[])
    assert await access.authenticate(admin, "calib_" + "x" * 43) is None
    await access.revoke_token(admin, issued.id)
    assert await access.authenticate(admin, issued.token) is None
    await access.revoke_token(admin, issued.id)  # revoking again is fine
    with pytest.raises(NotFoundError, match="token 'nope' not found"):
        await access.revoke_token(admin, "nope")


async def test_a_user_may_only_join_existing_observatories(admin):
    elsewhere = Membership(observatory_id="nowhere")
    with pytest.raises(NotFoundError, match="observatory 'nowhere' not found"):
        await access.create_user(admin, name="x", server_admin=False, memberships=[elsewhere])
    assert await admin.accounts.users() == []


async def test_a_user_gets_a_new_token_after_revoking_a_leaked_one(admin):
    user, leaked = await access.create_user(admin, name="f", server_admin=False, memberships=[])
    await access.revoke_token(admin, leaked.id)
    fresh = await access.user_token(admin, user.id)
    assert (await access.authenticate(admin, fresh.token)).user_id == user.id
    [account] = await access.accounts(admin)
    assert account.user == user and account.token_ids == [fresh.id]
    with pytest.raises(NotFoundError, match="user 'nope' not found"):
        await access.user_token(admin, "nope")


async def test_plugin_tokens_belong_to_an_existing_observatory_and_list_with_no_user(admin):
    issued = await access.plugin_token(admin, OBS)
    assert await access.authenticate(admin, issued.token) == Principal(
        token_id=issued.id, name="plugin", plugin_observatory=OBS
    )
    assert await access.accounts(admin) == []
    with pytest.raises(NotFoundError):
        await access.plugin_token(admin, "nowhere")


async def test_accounts_list_every_live_token_id_sorted(admin):
    user, first = await access.create_user(admin, name="g", server_admin=False, memberships=[])
    second = await access.user_token(admin, user.id)
    third = await access.user_token(admin, user.id)
    await access.revoke_token(admin, second.id)
    [account] = await access.accounts(admin)
    assert account.token_ids == sorted([first.id, third.id])


async def test_the_bootstrap_token_is_a_server_admin_and_comes_back_after_revocation(admin):
    await access.bootstrap_admin(admin, "calib_bootstrap")
    principal = await access.authenticate(admin, "calib_bootstrap")
    assert principal.server_admin and principal.user_id == BOOTSTRAP_USER_ID
    created = (await admin.accounts.user(BOOTSTRAP_USER_ID)).created_at

    await access.revoke_token(admin, principal.token_id)
    admin.clock.advance(days=1)
    await access.bootstrap_admin(admin, "calib_bootstrap")  # the next start
    again = await access.authenticate(admin, "calib_bootstrap")
    assert again is not None and again.token_id == principal.token_id
    assert (await admin.accounts.user(BOOTSTRAP_USER_ID)).created_at == created
    assert len(admin.accounts.token_documents.documents) == 1


async def test_an_observatory_id_is_taken_once(admin):
    created = await access.create_observatory(admin, "north", "North dome")
    assert (created.id, created.name, created.created_at) == (
        "north",
        "North dome",
        admin.clock.now(),
    )
    with pytest.raises(ConflictError, match="observatory 'north' already exists"):
        await access.create_observatory(admin, "north", "again")
