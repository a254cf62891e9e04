"""The rejected registrations of an observatory."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from calib_app.ports import ObservatoryRepository, RejectionRepository
from calib_core.access import Capability, Principal
from calib_core.models import Rejection
from calib_gateway.dependencies import Injected
from calib_gateway.guards import ensure


class RejectionList(msgspec.Struct, kw_only=True):
    items: list[Rejection]


class RejectionsController(Controller):
    path = "/api/v1/calibration"

    @get("/rejections/{observatory_id:str}")
    async def rejections(
        self,
        caller: Injected[Principal],
        rejections: Injected[RejectionRepository],
        observatories: Injected[ObservatoryRepository],
        observatory_id: FromPath[str],
    ) -> RejectionList:
        """Rejected registrations. Events naming an observatory that does not exist are
        recorded under that id too; only a server admin can see those."""
        ensure(caller, Capability.MANAGE, observatory_id)
        items = await rejections.list(observatory_id)
        if not items and await observatories.get(observatory_id) is None:
            raise NotFoundException(f"observatory '{observatory_id}' not found")
        return RejectionList(items=items)
