"""``POST /masters/create``: stack a group now (SPEC §5), through the same job queue as
the automatic triggers. The body names the observatory: a caller who may manage none is
refused before it is read, and the body is bounded (1 MiB, the app's JSON limit)."""

from __future__ import annotations

from litestar import Controller, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import JSONBody

from calib_app.manual_jobs import stack_now
from calib_app.ports import ObservatoryRepository
from calib_app.queueing import JobQueue
from calib_core.access import Capability, Principal
from calib_core.limits import check_fields
from calib_core.models import FrameType, StackJob
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_manage_somewhere, ensure
from calib_gateway.masters.schemas import CreateMasterIn

CALIBRATION_TYPES = (FrameType.DARK.value, FrameType.FLAT.value, FrameType.BIAS.value)


class MasterCreationController(Controller):
    path = "/api/v1/calibration"

    @post("/masters/create", status_code=202, guards=[can_manage_somewhere])
    async def create_master(
        self,
        caller: Injected[Principal],
        queue: Injected[JobQueue],
        observatories: Injected[ObservatoryRepository],
        data: JSONBody[CreateMasterIn],
    ) -> StackJob:
        """Stack a group now; ``force`` allows fewer frames than the threshold. Answers the
        configuration's open job if it already has one."""
        ensure(caller, Capability.MANAGE, data.observatory_id)
        if await observatories.get(data.observatory_id) is None:
            raise NotFoundException(f"observatory '{data.observatory_id}' not found")
        if data.frame_type not in CALIBRATION_TYPES:
            raise ValidationException("frame_type must be one of dark, flat, bias")
        check_fields(data.group_request())
        return await stack_now(
            queue,
            data.observatory_id,
            FrameType(data.frame_type),
            data.group_request(),
            force=data.force,
        )
