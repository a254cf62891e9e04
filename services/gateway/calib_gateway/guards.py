"""Permission checks, in one place: route guards for observatory paths, and
``ensure`` for records whose observatory is only known once loaded."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from calib_core.access import Capability, Principal, allowed, allowed_somewhere


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


def requires_somewhere(capability: Capability):
    """Guard for routes whose body names the observatory: refuse, before the body is read,
    a caller who may do ``capability`` for no observatory at all (the handler checks the
    one the body names)."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if not allowed_somewhere(connection.user, capability):
            raise PermissionDeniedException(f"not allowed to {capability.value} any observatory")

    return guard


can_view = requires(Capability.VIEW)
can_read_capture_plan = requires(Capability.CAPTURE_PLAN)
can_manage = requires(Capability.MANAGE)
server_admin = requires(Capability.SERVER)
can_register_somewhere = requires_somewhere(Capability.REGISTER)
can_manage_somewhere = requires_somewhere(Capability.MANAGE)


async def refuse_operator_parameters(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Refuse query parameters shaped like MongoDB operators (``camera_name[$ne]=x``,
    ``$where=...``): they would be ignored anyway, and silently ignoring a filter the
    caller believes applies is worse than saying no. Values are never parsed as queries."""
    for name in connection.query_params:
        if "$" in name or "[" in name:
            raise ClientException(f"query parameter '{name}' is not allowed")
