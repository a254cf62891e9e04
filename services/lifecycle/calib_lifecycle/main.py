"""The lifecycle service's composition root: on ``master.created`` supersession and the
description of uploaded masters; on request calibrated lights and maintenance. Each is
bound to its use case over this process's adapters."""

from __future__ import annotations

from calib_app.calibration import FrameLibrary, LightCalibration, calibrate
from calib_app.lifecycle import (
    UploadedMasters,
    describe_uploaded_master,
    frame_preview,
    supersede,
)
from calib_app.maintenance import Maintenance, run_maintenance
from calib_core import events, wiring
from calib_core.lifecycle import MaintenanceTask
from calib_infra import compose
from calib_infra.rpc import serve
from calib_infra.runtime import Runtime, run_service
from calib_lifecycle.numerics import StackNumerics
from calib_stack import imagestats

#: Calibrations answered at once by one replica (each holds a band of a few frames).
CALIBRATION_WORKERS = 4


def subscribe(
    runtime: Runtime,
    *,
    library: FrameLibrary,
    calibration: LightCalibration,
    uploaded: UploadedMasters,
    maintenance: Maintenance,
) -> None:
    runtime.consume(
        wiring.LIFECYCLE_SUPERSEDE,
        events.MasterCreated,
        lambda event: supersede(library, event.master_id),
    )
    runtime.consume(
        wiring.LIFECYCLE_DESCRIBE,
        events.MasterCreated,
        lambda event: describe_uploaded_master(uploaded, event.master_id),
    )
    serve(
        runtime,
        events.LIFECYCLE_CALIBRATE,
        events.CalibrateRequest,
        lambda request: calibrate(calibration, request.frame_id),
        max_workers=CALIBRATION_WORKERS,
    )
    serve(
        runtime,
        events.LIFECYCLE_PREVIEW,
        events.PreviewRequest,
        lambda request: frame_preview(uploaded, request.frame_id),
    )
    serve(
        runtime,
        events.LIFECYCLE_MAINTENANCE,
        events.MaintenanceCommand,
        lambda command: run_maintenance(
            maintenance, MaintenanceTask(command.task), command.observatory_id
        ),
    )


def setup(runtime: Runtime) -> None:
    imagestats.warm_up()  # the statistics kernels, for uploaded masters
    numerics = StackNumerics()
    subscribe(
        runtime,
        library=compose.frame_library(runtime),
        calibration=compose.light_calibration(runtime, numerics),
        uploaded=compose.uploaded_masters(runtime, numerics),
        maintenance=compose.maintenance(runtime),
    )


def main() -> None:
    run_service("lifecycle", setup)


if __name__ == "__main__":
    main()
