"""Every service exposes Prometheus metrics (the gateway on its API port, the others beside
``/healthz``), and they move with the work: frames registered and rejected, messages
handled, a stacking job's duration, each consumer's lag."""

from __future__ import annotations

import numpy as np

from calib_core import events, wiring
from tests.e2e.test_skeleton import dark_bytes, masters
from tests.integration.registry_helpers import publish_raw
from tests.support.system import Services, scrape, wait_for

DARKS = 10  # the default dark trigger


def total(system: Services, prefix: str, sample: str, **labels: str) -> float:
    """A sample's value summed over the replicas of a service (``stacker``: every one)."""
    wanted = tuple(sorted(labels.items()))
    return sum(
        scrape(system, name)[sample, wanted] for name in system.processes if name.startswith(prefix)
    )


def test_every_service_counts_its_work_for_prometheus(system, admin, plugin, observatory):
    jobs_before = total(
        system, "stacker", "calib_stack_job_duration_seconds_count", outcome="succeeded"
    )
    invalid_before = total(
        system, "registry", "calib_frames_rejected_total", reason="invalid_event"
    )

    rng = np.random.default_rng(11)
    for index in range(DARKS):
        plugin.register(observatory, dark_bytes(rng, index))
    publish_raw(system.config, events.subject(events.FRAME_REGISTERED, observatory), b"{not json")
    wait_for(lambda: masters(admin, observatory), timeout_s=90, what="a master")

    registered = (
        "calib_frames_registered_total",
        (("frame_type", "dark"), ("observatory", observatory)),
    )
    assert scrape(system, "registry")[registered] == DARKS
    wait_for(  # other tests' messages may be counted meanwhile: at least ours
        lambda: (
            total(system, "registry", "calib_frames_rejected_total", reason="invalid_event")
            >= invalid_before + 1
        ),
        timeout_s=30,
        what="the invalid event's rejection to be counted",
    )
    handled = scrape(system, "registry")[
        "calib_messages_handled_total", (("consumer", "registry"), ("event", "frame.registered"))
    ]
    assert handled >= DARKS + 1  # the invalid one is handled too: rejected, on record
    assert (
        total(system, "stacker", "calib_stack_job_duration_seconds_count", outcome="succeeded")
        >= jobs_before + 1
    )
    assert total(system, "stacker", "calib_stack_job_duration_seconds_sum", outcome="succeeded") > 0

    for name in ("scheduler", "lifecycle"):
        consumers = [c for c in wiring.CONSUMERS if c.service == name]
        for consumer in consumers:
            wait_for(
                lambda consumer=consumer, name=name: (
                    scrape(system, name)[
                        "calib_messages_handled_total",
                        (("consumer", consumer.durable), ("event", events.MASTER_CREATED)),
                    ]
                    >= 1
                ),
                timeout_s=30,
                what=f"{consumer.durable} to handle master.created",
            )

    for name in system.processes:
        service = name.split("-")[0]
        samples = scrape(system, name)
        for consumer in (c for c in wiring.CONSUMERS if c.service == service):
            lag = ("calib_consumer_pending_messages", (("consumer", consumer.durable),))
            assert lag in samples, f"{name} reports no lag of {consumer.durable}"
        assert samples["process_resident_memory_bytes", ()] > 0
    assert ("calib_dead_letters_waiting", ()) in scrape(system, "gateway")
