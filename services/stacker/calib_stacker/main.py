"""The stacker service: replicas share the durable ``stacker`` pull consumer."""

from __future__ import annotations

from calib_infra.runtime import Runtime, run_service
from calib_stacker.jobs import handle_stack_request


def setup(runtime: Runtime) -> None:
    runtime.consume(
        "stack.requested.*", "stacker",
        lambda body, subject: handle_stack_request(runtime, body, subject),
        ack_wait_s=runtime.config.stacker_ack_wait_s,
    )


def main() -> None:
    run_service("stacker", setup)


if __name__ == "__main__":
    main()
