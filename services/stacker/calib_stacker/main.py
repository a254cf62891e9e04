"""The stacker service: replicas share the durable ``stacker`` pull consumer."""

from __future__ import annotations

import numpy as np

from calib_core import events, wiring
from calib_infra.runtime import Runtime, run_service
from calib_stack import imagestats
from calib_stack.kernels import METHODS, combine
from calib_stacker.jobs import run_job


def load_kernels() -> None:
    """Load the compiled stacking and statistics kernels (numba's on-disk cache, compiled
    into it on first use) before taking jobs, so that the first job is not slower."""
    sample = np.zeros((3, 1, 8), dtype=np.float32)
    for method in METHODS:
        combine(sample, method)
    imagestats.warm_up()


def setup(runtime: Runtime) -> None:
    load_kernels()
    runtime.consume(
        wiring.STACKER,
        events.StackRequested,
        lambda request: run_job(runtime, request.job_id),
        ack_wait_s=runtime.config.stacker_ack_wait_s,
    )


def main() -> None:
    run_service("stacker", setup)


if __name__ == "__main__":
    main()
