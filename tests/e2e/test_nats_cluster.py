"""The services on a 3-node NATS JetStream cluster (issue 14): the stream and its
consumers replicated on every node (``CALIB_STREAM_REPLICAS=3``); one node killed while
frames come in and another while a stack job runs, each restarted: every frame is
registered once, the group gets one master, and plugins are still admitted through
whichever node they reach (the auth callout crosses the routes to the gateway)."""

from __future__ import annotations

import asyncio

import httpx
import nats
import nats.errors
import numpy as np
from pymongo import MongoClient

from calib_core import events
from calib_core.busaccess import inbox_prefix
from calib_infra import bus
from calib_infra.devstack import EmbeddedNatsCluster
from calib_infra.eventloop import run_bounded
from tests.e2e.test_delivery import big_dark
from tests.integration.registry_helpers import jobs, masters, wait_registered
from tests.support.plugin import Plugin
from tests.support.system import (
    ADMIN_TOKEN,
    Services,
    consumer_drained,
    free_port,
    service_config,
    unique,
    wait_for,
)


def announce_through_failover(plugin: Plugin, observatory: str, files: list[bytes]) -> None:
    """Upload and announce ``files``, publishing again with the same ``Nats-Msg-Id`` while
    the cluster elects a new leader (as a plugin retries; the stream drops the repeats)."""
    registered = [plugin.uploaded(observatory, data) for data in files]

    def announced() -> bool:
        try:
            plugin.announce([(event, event.event_id) for event in registered])
        except (nats.errors.Error, TimeoutError):
            return False
        return True

    wait_for(announced, timeout_s=60, interval_s=0.5, what="the stream to take the frames")


def stream_state(config, observatory: str) -> tuple[str, int, int]:
    """The stream's leader, its replicas, and its ``frame.registered`` messages of
    ``observatory``, once a leader answers (after a node's death, the others elect one)."""

    async def look() -> tuple[str, int, int] | None:
        connection = await bus.connect(config)
        try:
            subject = events.subject(events.FRAME_REGISTERED, observatory)
            info = await connection.jetstream().stream_info(
                events.STREAM_NAME, subjects_filter=subject
            )
            held = (info.state.subjects or {}).get(subject, 0)
            return info.cluster.leader, info.config.num_replicas, held
        except nats.errors.TimeoutError:
            return None
        finally:
            await connection.close()

    return wait_for(lambda: run_bounded(look()), what="the stream's leader")


def admitted_on_every_node(cluster: EmbeddedNatsCluster, token: str, observatory: str) -> None:
    async def connect(url: str) -> None:
        connection = await nats.connect(
            url, token=token, inbox_prefix=inbox_prefix(observatory), allow_reconnect=False
        )
        await connection.close()

    for node in cluster.nodes:
        asyncio.run(connect(cluster.url(node)))


def test_the_services_lose_nothing_when_cluster_nodes_die(servers, tmp_path):
    cluster = EmbeddedNatsCluster(tmp_path / "nats")
    cluster.start()
    config = service_config(
        servers.endpoints.with_nats_of(cluster),
        unique("calib_cluster").replace("-", "_"),
        gateway_port=free_port(),
        stream_replicas=3,
    )
    services = Services(config=config, bus=cluster.bus, log_dir=tmp_path / "logs")
    admin = httpx.Client(
        base_url=services.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )
    try:
        services.start_all(stackers=2, lifecycle=False)  # from frames to masters
        services.wait_ready()
        observatory = unique("obs")
        created = admin.post("/api/v1/admin/observatories", json={"id": observatory, "name": "C"})
        assert created.status_code == 201, created.text
        plugin = Plugin(config)
        files = [big_dark(np.random.default_rng(17), index) for index in range(10)]

        # mid-ingestion: the stream's leader dies; the others elect another
        first, replicas, _ = stream_state(config, observatory)
        assert replicas == 3
        announce_through_failover(plugin, observatory, files[:5])
        cluster.kill(first)
        announce_through_failover(plugin, observatory, files[5:9])
        cluster.restart(first)
        announce_through_failover(plugin, observatory, files[9:])  # the group's 10th: a job

        # mid-stack: the leader again (another node, unless the first was re-elected)
        wait_for(lambda: jobs(admin, observatory, "running"), interval_s=0.05, what="the job")
        leader = stream_state(config, observatory)[0]
        second = leader if leader != first else next(n for n in cluster.nodes if n != first)
        cluster.kill(second)
        cluster.restart(second)

        found = wait_for(lambda: masters(admin, observatory), timeout_s=120, what="a master")
        assert [master["n_frames"] for master in found] == [10]
        stored = wait_registered(admin, config, observatory, 10)
        assert len({frame["sha256"] for frame in stored}) == len(stored) == 10
        held = stream_state(config, observatory)[2]
        assert held == 10, f"the stream holds {held} frame.registered messages, not 10"
        wait_for(lambda: consumer_drained(config, "stacker"), what="the stacker to drain")
        assert [job["status"] for job in jobs(admin, observatory)] == ["succeeded"]
        assert masters(admin, observatory) == found
        with MongoClient(config.mongodb_uri) as client:
            assert client[config.mongodb_db]["dead_letters"].count_documents({}) == 0

        token = admin.post(f"/api/v1/admin/observatories/{observatory}/plugin-tokens").json()
        admitted_on_every_node(cluster, token["token"], observatory)
    finally:
        admin.close()
        services.stop()
        cluster.stop()
