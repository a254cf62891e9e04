"""The registry service's composition root: replicas share the durable ``registry``
consumer of ``frame.registered.*``, taken in batches, each batch registered by the
registration use case over this process's adapters."""

from __future__ import annotations

from collections.abc import Awaitable

from calib_app.registration import register_batch
from calib_core import wiring
from calib_infra import compose
from calib_infra.batches import consume_batches
from calib_infra.runtime import Runtime, run_service


def background(runtime: Runtime) -> list[Awaitable[None]]:
    registration = compose.registration(runtime)
    return [
        consume_batches(runtime, wiring.REGISTRY, lambda batch: register_batch(registration, batch))
    ]


def main() -> None:
    # no per-message subscribers: the batch consumer starts once everything is connected
    run_service("registry", setup=lambda runtime: None, background=background)


if __name__ == "__main__":
    main()
