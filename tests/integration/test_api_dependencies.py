"""A gateway on its own set of servers, stopped one by one: each fault is a 503 naming
the dependency, never a 500, and nothing half-stored. Also the upload size limit (413)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api_helpers import (
    API,
    create_observatory,
    library,
    master_bytes,
    upload_master,
)
from tests.support.system import (
    ADMIN_TOKEN,
    Services,
    free_port,
    service_config,
    start_servers,
    unique,
)


@pytest.fixture
def isolated(tmp_path):
    """Servers and a gateway (upload limit 1 MB) that this test may break."""
    servers = start_servers(tmp_path / "servers")
    config = service_config(
        servers.endpoints,
        unique("calib_faults").replace("-", "_"),
        gateway_port=free_port(),
        max_upload_mb=1,
    )
    gateway = Services(config=config, bus=servers.endpoints.bus, log_dir=tmp_path / "logs")
    try:
        gateway.create_schema()
        gateway.start("gateway")
        gateway.wait_ready()
        with httpx.Client(
            base_url=gateway.base_url,
            timeout=30,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as client:
            yield servers, client
    finally:
        gateway.stop()
        servers.stop()


def assert_unavailable(response: httpx.Response, dependency: str) -> dict:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "unavailable" and dependency in body["detail"]
    return body


def test_size_limit_and_each_dependency_down(isolated):
    servers, client = isolated
    observatory = create_observatory(client, unique("obs"))
    stored = upload_master(client, observatory, master_bytes(seed=1))
    assert stored.status_code == 201, stored.text
    master_id = stored.json()["id"]

    too_big = upload_master(client, observatory, master_bytes(seed=2) + b"\0" * (1024 * 1024))
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    assert library(client, observatory)["total"] == 1
    assert client.get(f"{API}/health").status_code == 200

    servers.processes["nats"].stop()
    refused = upload_master(client, observatory, master_bytes(seed=3))
    assert assert_unavailable(refused, "nats")["dependency"] == "nats"
    assert library(client, observatory)["total"] == 1  # the record was taken back
    assert_unavailable(client.get(f"{API}/events/{observatory}"), "nats")
    report = assert_unavailable(client.get(f"{API}/health"), "nats")
    assert (
        report["dependencies"]["nats"]["ok"] is False
        and report["dependencies"]["mongodb"]["ok"] is True
    )

    servers.processes["s3"].stop()
    download = client.get(f"{API}/frames/{master_id}/download")
    assert assert_unavailable(download, "s3")["dependency"] == "s3"
    report = assert_unavailable(client.get(f"{API}/health"), "s3")
    assert report["dependencies"]["s3"]["ok"] is False and "nats" in report["detail"]

    servers.processes["mongodb"].stop()
    assert (
        assert_unavailable(client.get(f"{API}/library/{observatory}"), "mongodb")["dependency"]
        == "mongodb"
    )
    assert_unavailable(
        client.post("/api/v1/admin/observatories", json={"id": unique("o"), "name": "x"}), "mongodb"
    )
