"""Observatories, users, user and plugin tokens, revocation (server admins only), and
``GET /me`` for any caller."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.exceptions import ValidationException
from litestar.params import FromPath, JSONBody

from calib_app import access as admin
from calib_app.access import Access
from calib_core.access import Principal
from calib_core.events import OBSERVATORY_ID_PATTERN
from calib_core.models import Observatory
from calib_gateway.admin.schemas import (
    NewTokenOut,
    ObservatoryIn,
    ObservatoryList,
    PluginTokenOut,
    TokenOut,
    UserIn,
    UserList,
    UserOut,
)
from calib_gateway.dependencies import Injected
from calib_gateway.guards import server_admin


class AdminController(Controller):
    path = "/api/v1/admin"
    guards = [server_admin]

    @post("/observatories", status_code=201)
    async def create_observatory(
        self, access: Injected[Access], data: JSONBody[ObservatoryIn]
    ) -> Observatory:
        if not OBSERVATORY_ID_PATTERN.match(data.id):
            raise ValidationException(
                "id must be 1-64 characters of lower-case letters, digits, '-' or '_', starting "
                "with a letter or digit"
            )
        return await admin.create_observatory(access, data.id, data.name)

    @get("/observatories")
    async def list_observatories(self, access: Injected[Access]) -> ObservatoryList:
        return ObservatoryList(items=await access.observatories.all())

    @get("/users")
    async def list_users(self, access: Injected[Access]) -> UserList:
        """Users, their memberships and the ids of their live tokens (never the tokens)."""
        return UserList(
            items=[
                UserOut(
                    id=account.user.id,
                    name=account.user.name,
                    server_admin=account.user.server_admin,
                    memberships=account.user.memberships,
                    token_ids=account.token_ids,
                    created_at=account.user.created_at,
                )
                for account in await admin.accounts(access)
            ]
        )

    @post("/users/{user_id:str}/tokens", status_code=201)
    async def user_token(self, access: Injected[Access], user_id: FromPath[str]) -> NewTokenOut:
        """A new token for an existing user (e.g. after revoking a leaked one); shown once."""
        issued = await admin.user_token(access, user_id)
        return NewTokenOut(token_id=issued.id, token=issued.token)

    @post("/users", status_code=201)
    async def create_user(self, access: Injected[Access], data: JSONBody[UserIn]) -> TokenOut:
        user, issued = await admin.create_user(
            access, name=data.name, server_admin=data.server_admin, memberships=data.memberships
        )
        return TokenOut(id=user.id, token=issued.token, token_id=issued.id)

    @post("/observatories/{observatory_id:str}/plugin-tokens", status_code=201)
    async def plugin_token(
        self, access: Injected[Access], observatory_id: FromPath[str]
    ) -> PluginTokenOut:
        issued = await admin.plugin_token(access, observatory_id)
        return PluginTokenOut(id=issued.id, token=issued.token, observatory_id=observatory_id)

    @delete("/tokens/{token_id:str}", status_code=204)
    async def revoke(self, access: Injected[Access], token_id: FromPath[str]) -> None:
        await admin.revoke_token(access, token_id)


@get("/api/v1/me")
async def me(caller: Injected[Principal]) -> Principal:
    """Who the token belongs to: name, server-admin flag, memberships (or the plugin's
    observatory). Lets a page or tool show only what the caller may see."""
    return caller
