"""The registry service: consumes ``frame.registered.*`` in batches."""

from __future__ import annotations

from collections.abc import Awaitable

from calib_core import wiring
from calib_infra.batches import consume_batches
from calib_infra.runtime import Runtime, run_service
from calib_registry.ingest import handle_batch


def background(runtime: Runtime) -> list[Awaitable[None]]:
    return [consume_batches(runtime, wiring.REGISTRY, lambda batch: handle_batch(runtime, batch))]


def main() -> None:
    # no per-message subscribers: the batch consumer starts once everything is connected
    run_service("registry", setup=lambda runtime: None, background=background)


if __name__ == "__main__":
    main()
