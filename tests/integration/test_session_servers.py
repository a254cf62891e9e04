"""Where the test session's servers come from is one choice: containers of the production
engines when a Docker engine answers, the embedded servers otherwise. Both branches'
wiring, without needing an engine here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from calib_infra.devstack import Endpoints
from calib_infra.natsauth import BusSecrets
from tests.support import servers
from tests.support.servers import ContainerServers, endpoints_of, session_servers

ROOT = Path(__file__).resolve().parents[2]


class StartedContainer:
    """What a started testcontainer tells about itself."""

    def __init__(self, host: str, ports: dict[int, int], **attributes: object):
        self.host, self.ports = host, ports
        self.__dict__.update(attributes)

    def get_container_host_ip(self) -> str:
        return self.host

    def get_exposed_port(self, port: int) -> int:
        return self.ports[port]

    def get_connection_url(self) -> str:
        return f"mongodb://test:test@{self.host}:{self.ports[27017]}"


def test_started_containers_become_the_services_endpoints():
    bus = BusSecrets.generate()
    endpoints = endpoints_of(
        {
            "mongodb": StartedContainer("10.0.0.5", {27017: 32768}),
            "s3": StartedContainer(
                "10.0.0.6", {9000: 32769}, port=9000, access_key="k", secret_key="s"
            ),
            "nats": StartedContainer("10.0.0.7", {4222: 32770}),
        },
        bus,
    )
    assert endpoints == Endpoints(
        nats_url="nats://10.0.0.7:32770",
        mongodb_uri="mongodb://test:test@10.0.0.5:32768",
        s3_endpoint="10.0.0.6:32769",
        s3_access_key="k",
        s3_secret_key="s",
        bus=bus,
    )


def test_a_reachable_docker_engine_selects_the_containers(monkeypatch, tmp_path):
    monkeypatch.setattr(servers, "docker_reachable", lambda: True)
    monkeypatch.setattr(ContainerServers, "start", lambda self: self)
    chosen = session_servers(tmp_path)
    assert isinstance(chosen, ContainerServers)


def test_without_docker_the_embedded_servers_answer(monkeypatch, tmp_path):
    monkeypatch.setattr(servers, "docker_reachable", lambda: False)
    chosen = session_servers(tmp_path)
    try:
        endpoints = chosen.endpoints
        assert endpoints.nats_url.startswith("nats://127.0.0.1:")
        assert "retryWrites=false" in endpoints.mongodb_uri
        assert set(chosen.processes) == {"nats", "s3", "mongodb"}
    finally:
        chosen.stop()


@pytest.mark.parametrize("image", [servers.MONGODB_IMAGE, servers.MINIO_IMAGE, servers.NATS_IMAGE])
def test_the_containers_are_the_engines_compose_runs(image):
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.search(rf"^\s+image: {re.escape(image)}$", compose, re.M), image
