"""The lifecycle service: supersession (and, later, expiry, retention, deletion, cache)."""

from __future__ import annotations

from calib_infra.runtime import Runtime, run_service
from calib_lifecycle.supersede import handle_master_created


def setup(runtime: Runtime) -> None:
    runtime.consume(
        "master.created.*", "lifecycle-master-created",
        lambda body, subject: handle_master_created(runtime, body, subject),
    )


def main() -> None:
    run_service("lifecycle", setup)


if __name__ == "__main__":
    main()
