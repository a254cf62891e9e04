"""Plugins on the bus over the fakes: which tokens the auth callout admits, with which
permissions, and which live connections the revocation sweep closes."""

from __future__ import annotations

from calib_app import access
from calib_app.bus_access import BusConnection, admit_plugin, revoked_connections
from calib_core.busaccess import plugin_permissions, plugin_user
from tests.unit.core.factories import OBS


async def test_a_live_plugin_token_is_admitted_with_its_observatorys_permissions(admin):
    issued = await access.plugin_token(admin, OBS)
    grant = await admit_plugin(admin.accounts, issued.token)
    assert grant.observatory_id == OBS
    assert grant.user == plugin_user(issued.id)
    assert grant.permissions == plugin_permissions(OBS)


async def test_anything_but_a_live_plugin_token_is_refused_with_the_reason(admin):
    _, user_token = await access.create_user(admin, name="erin", server_admin=True, memberships=[])
    revoked = await access.plugin_token(admin, OBS)
    await access.revoke_token(admin, revoked.id)
    assert await admit_plugin(admin.accounts, "") == "no credentials"
    assert await admit_plugin(admin.accounts, "calib_guess") == "unknown or revoked token"
    assert await admit_plugin(admin.accounts, revoked.token) == "unknown or revoked token"
    assert await admit_plugin(admin.accounts, user_token.token) == "not a plugin token"


async def test_the_sweep_closes_only_the_connections_of_revoked_plugin_tokens(admin):
    kept = await access.plugin_token(admin, OBS)
    cut = await access.plugin_token(admin, OBS)
    await access.revoke_token(admin, cut.id)
    connections = [
        BusConnection("server-a", 1, "registry"),
        BusConnection("server-a", 2, plugin_user(kept.id)),
        BusConnection("server-a", 3, plugin_user(cut.id)),
        BusConnection("server-b", 9, plugin_user(cut.id)),
        BusConnection("server-b", 4, plugin_user("never-issued")),
    ]
    closed = await revoked_connections(admin.accounts, connections)
    assert closed == [connections[2], connections[3], connections[4]]
    assert await revoked_connections(admin.accounts, connections[:2]) == []
