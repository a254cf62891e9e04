"""Permission checks, in one place: route guards for observatory paths, and
``ensure`` for records whose observatory is only known once loaded."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
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
            observatories = connection.app.state.gateway.access.observatories
            if await observatories.get(observatory_id) is None:
                raise NotFoundException(f"observatory '{observatory_id}' not found")

    return guard


can_view = requires(Capability.VIEW)
can_read_capture_plan = requires(Capability.CAPTURE_PLAN)
can_manage = requires(Capability.MANAGE)
server_admin = requires(Capability.SERVER)


async def refuse_operator_parameters(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Refuse query parameters shaped like MongoDB operators (``camera_name[$ne]=x``,
    ``$where=...``): they would be ignored anyway, and silently ignoring a filter the
    caller believes applies is worse than saying no. Values are never parsed as queries."""
    for name in connection.query_params:
        if "$" in name or "[" in name:
            raise ClientException(f"query parameter '{name}' is not allowed")
