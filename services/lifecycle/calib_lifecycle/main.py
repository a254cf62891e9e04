"""The lifecycle service: supersession, expiry, retention, calibrated lights and their cache."""

from __future__ import annotations

from calib_core import events, wiring
from calib_infra.rpc import serve
from calib_infra.runtime import Runtime, run_service
from calib_lifecycle.calibrate import handle_calibrate
from calib_lifecycle.describe import handle_master_described
from calib_lifecycle.maintenance import run_maintenance
from calib_lifecycle.supersede import handle_master_created
from calib_stack import imagestats

#: Calibrations answered at once by one replica (each holds a band of a few frames).
CALIBRATION_WORKERS = 4


def setup(runtime: Runtime) -> None:
    imagestats.warm_up()  # the statistics kernels, for uploaded masters (see describe.py)
    runtime.consume(
        wiring.LIFECYCLE_SUPERSEDE,
        events.MasterCreated,
        lambda event: handle_master_created(runtime, event),
    )
    runtime.consume(
        wiring.LIFECYCLE_DESCRIBE,
        events.MasterCreated,
        lambda event: handle_master_described(runtime, event),
    )
    serve(
        runtime,
        events.LIFECYCLE_CALIBRATE,
        events.CalibrateRequest,
        lambda request: handle_calibrate(runtime, request),
        max_workers=CALIBRATION_WORKERS,
    )
    serve(
        runtime,
        events.LIFECYCLE_MAINTENANCE,
        events.MaintenanceCommand,
        lambda command: run_maintenance(runtime, command),
    )


def main() -> None:
    run_service("lifecycle", setup)


if __name__ == "__main__":
    main()
