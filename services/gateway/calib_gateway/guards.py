"""Permission checks, in one place: route guards for observatory paths, and
``ensure`` for records whose observatory is only known once loaded."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from calib_core.access import Capability, Principal, allowed


def ensure(principal: Principal, capability: Capability, observatory_id: str | None = None) -> None:
    if not allowed(principal, capability, observatory_id):
        target = f"observatory '{observatory_id}'" if observatory_id else "this server"
        raise PermissionDeniedException(f"not allowed to {capability.value} {target}")


def requires(capability: Capability):
    """Guard for routes with an ``observatory_id`` path parameter (or server-wide ones)."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        observatory_id = connection.path_params.get("observatory_id")
        ensure(connection.user, capability, observatory_id)
        if observatory_id is not None:
            runtime = connection.app.state.runtime
            if await runtime.observatories.get(observatory_id) is None:
                raise NotFoundException(f"observatory '{observatory_id}' not found")

    return guard


can_view = requires(Capability.VIEW)
can_manage = requires(Capability.MANAGE)
server_admin = requires(Capability.SERVER)
