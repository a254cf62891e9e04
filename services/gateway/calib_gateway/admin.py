"""Server administration: observatories, users, plugin tokens, revocation."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.exceptions import ClientException, NotFoundException, ValidationException

from calib_core.access import Principal
from calib_core.events import OBSERVATORY_ID_PATTERN
from calib_core.models import Observatory
from calib_gateway.guards import server_admin
from calib_gateway.schemas import (
    NewTokenOut,
    ObservatoryIn,
    ObservatoryList,
    PluginTokenOut,
    TokenOut,
    UserIn,
    UserList,
    UserOut,
)


class AdminController(Controller):
    path = "/api/v1/admin"
    guards = [server_admin]

    @post("/observatories", status_code=201)
    async def create_observatory(self, request: Request, data: ObservatoryIn) -> Observatory:
        runtime = request.app.state.runtime
        if not OBSERVATORY_ID_PATTERN.match(data.id):
            raise ValidationException(
                "id must be 1-64 characters of lower-case letters, digits, '-' or '_', starting "
                "with a letter or digit"
            )
        observatory = Observatory(id=data.id, name=data.name, created_at=runtime.now())
        if not await runtime.observatories.create(observatory):
            raise ClientException(f"observatory '{data.id}' already exists", status_code=409)
        return observatory

    @get("/observatories")
    async def list_observatories(self, request: Request) -> ObservatoryList:
        return ObservatoryList(items=await request.app.state.runtime.observatories.all())

    @get("/users")
    async def list_users(self, request: Request) -> UserList:
        """Users, their memberships and the ids of their live tokens (never the tokens)."""
        users = await request.app.state.tokens.all_users()
        return UserList(
            items=[msgspec.convert({"id": u["_id"], **u}, UserOut, strict=False) for u in users]
        )

    @post("/users/{user_id:str}/tokens", status_code=201)
    async def user_token(self, request: Request, user_id: str) -> NewTokenOut:
        """A new token for an existing user (e.g. after revoking a leaked one); shown once."""
        tokens = request.app.state.tokens
        if await tokens.user(user_id) is None:
            raise NotFoundException(f"user '{user_id}' not found")
        token_id, token = await tokens.issue(
            user_id=user_id, plugin_observatory=None, now=request.app.state.runtime.now()
        )
        return NewTokenOut(token_id=token_id, token=token)

    @post("/users", status_code=201)
    async def create_user(self, request: Request, data: UserIn) -> TokenOut:
        runtime = request.app.state.runtime
        for membership in data.memberships:
            if await runtime.observatories.get(membership.observatory_id) is None:
                raise NotFoundException(f"observatory '{membership.observatory_id}' not found")
        tokens = request.app.state.tokens
        user_id = await tokens.create_user(
            name=data.name,
            server_admin=data.server_admin,
            memberships=data.memberships,
            now=runtime.now(),
        )
        token_id, token = await tokens.issue(
            user_id=user_id, plugin_observatory=None, now=runtime.now()
        )
        return TokenOut(id=user_id, token=token, token_id=token_id)

    @post("/observatories/{observatory_id:str}/plugin-tokens", status_code=201)
    async def plugin_token(self, request: Request, observatory_id: str) -> PluginTokenOut:
        runtime = request.app.state.runtime
        if await runtime.observatories.get(observatory_id) is None:
            raise NotFoundException(f"observatory '{observatory_id}' not found")
        token_id, token = await request.app.state.tokens.issue(
            user_id=None, plugin_observatory=observatory_id, now=runtime.now()
        )
        return PluginTokenOut(id=token_id, token=token, observatory_id=observatory_id)

    @delete("/tokens/{token_id:str}", status_code=204)
    async def revoke(self, request: Request, token_id: str) -> None:
        if not await request.app.state.tokens.revoke(token_id):
            raise NotFoundException(f"token '{token_id}' not found")


@get("/api/v1/me")
async def me(request: Request) -> Principal:
    """Who the token belongs to: name, server-admin flag, memberships (or the plugin's
    observatory). Lets a page or tool show only what the caller may see."""
    return request.user
