"""Server administration: observatories, users, plugin tokens, revocation."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from litestar.exceptions import ClientException, NotFoundException, ValidationException

from calib_core.events import OBSERVATORY_ID_PATTERN
from calib_core.models import Observatory
from calib_gateway.guards import server_admin
from calib_gateway.schemas import ObservatoryIn, PluginTokenOut, TokenOut, UserIn


class AdminController(Controller):
    path = "/api/v1/admin"
    guards = [server_admin]

    @post("/observatories", status_code=201)
    async def create_observatory(self, request: Request, data: ObservatoryIn) -> Observatory:
        runtime = request.app.state.runtime
        if not OBSERVATORY_ID_PATTERN.match(data.id):
            raise ValidationException(
                "id must be 1-64 characters of lower-case letters, digits, '-' or '_', starting "
                "with a letter or digit")
        observatory = Observatory(id=data.id, name=data.name, created_at=runtime.now())
        if not await runtime.observatories.create(observatory):
            raise ClientException(f"observatory '{data.id}' already exists", status_code=409)
        return observatory

    @get("/observatories")
    async def list_observatories(self, request: Request) -> dict:
        return {"items": await request.app.state.runtime.observatories.all()}

    @post("/users", status_code=201)
    async def create_user(self, request: Request, data: UserIn) -> TokenOut:
        runtime = request.app.state.runtime
        for membership in data.memberships:
            if await runtime.observatories.get(membership.observatory_id) is None:
                raise NotFoundException(f"observatory '{membership.observatory_id}' not found")
        tokens = request.app.state.tokens
        user_id = await tokens.create_user(name=data.name, server_admin=data.server_admin,
                                           memberships=data.memberships, now=runtime.now())
        token_id, token = await tokens.issue(user_id=user_id, plugin_observatory=None, now=runtime.now())
        return TokenOut(id=user_id, token=token, token_id=token_id)

    @post("/observatories/{observatory_id:str}/plugin-tokens", status_code=201)
    async def plugin_token(self, request: Request, observatory_id: str) -> PluginTokenOut:
        runtime = request.app.state.runtime
        token_id, token = await request.app.state.tokens.issue(
            user_id=None, plugin_observatory=observatory_id, now=runtime.now())
        return PluginTokenOut(id=token_id, token=token, observatory_id=observatory_id)

    @delete("/tokens/{token_id:str}", status_code=204)
    async def revoke(self, request: Request, token_id: str) -> None:
        if not await request.app.state.tokens.revoke(token_id):
            raise NotFoundException(f"token '{token_id}' not found")
