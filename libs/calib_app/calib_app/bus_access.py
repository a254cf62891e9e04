"""Plugins on the bus (SPEC §10, §12): admitting a connection by its plugin token, and
finding the live connections of tokens revoked since they connected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from calib_app.ports import AccountRepository
from calib_core.access import token_hash
from calib_core.busaccess import plugin_permissions, plugin_user, token_id_of


@dataclass(frozen=True)
class PluginGrant:
    """What an admitted plugin connection is: whose, and allowed to do what."""

    user: str
    observatory_id: str
    permissions: dict[str, Any]


@dataclass(frozen=True)
class BusConnection:
    server_id: str
    connection_id: int
    user: str


async def admit_plugin(accounts: AccountRepository, token: str) -> PluginGrant | str:
    """The grant for a connection presenting ``token``, or why it is refused."""
    if not token:
        return "no credentials"
    stored = await accounts.live_token(token_hash(token))
    if stored is None:
        return "unknown or revoked token"
    if stored.plugin_observatory is None:
        return "not a plugin token"
    return PluginGrant(
        user=plugin_user(stored.id),
        observatory_id=stored.plugin_observatory,
        permissions=plugin_permissions(stored.plugin_observatory),
    )


async def revoked_connections(
    accounts: AccountRepository, connections: Sequence[BusConnection]
) -> list[BusConnection]:
    """The plugin connections among ``connections`` whose token is no longer live."""
    tokens = {c: token_id_of(c.user) for c in connections}
    plugins = {c: token for c, token in tokens.items() if token is not None}
    if not plugins:
        return []
    live = await accounts.live_among(sorted(set(plugins.values())))
    return [c for c, token in plugins.items() if token not in live]
