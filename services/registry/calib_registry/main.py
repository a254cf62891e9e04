"""The registry service: consumes ``frame.registered.>``."""

from __future__ import annotations

from calib_infra.runtime import Runtime, run_service
from calib_registry.ingest import handle_registration


def setup(runtime: Runtime) -> None:
    runtime.consume(
        "frame.registered.*", "registry", lambda body, subject: handle_registration(runtime, body, subject)
    )


def main() -> None:
    run_service("registry", setup)


if __name__ == "__main__":
    main()
