"""The stacker service's composition root: replicas share the durable ``stacker`` pull
consumer, each message runs the stacking use case over this process's adapters."""

from __future__ import annotations

from calib_app.stacking import Stacking, run_job
from calib_core import events, wiring
from calib_infra import compose
from calib_infra.runtime import Runtime, run_service
from calib_stacker.numerics import ThreadedMasterBuilder, load_kernels


def subscribe(runtime: Runtime, stacking: Stacking) -> None:
    """Bind ``stack.requested`` to :func:`run_job`. A job's claim lasts as long as the
    consumer's ack wait: a message and a claim left by a dead replica run out together."""
    runtime.consume(
        wiring.STACKER,
        events.StackRequested,
        lambda request: run_job(stacking, request.job_id),
        ack_wait_s=stacking.lease_s,
    )


def setup(runtime: Runtime) -> None:
    load_kernels()
    builder = ThreadedMasterBuilder(runtime.config.stacker_memory_limit_mb)
    subscribe(runtime, compose.stacking(runtime, builder))


def main() -> None:
    run_service("stacker", setup)


if __name__ == "__main__":
    main()
