"""Every service answers a health endpoint a container probe can use, and it tells each
dependency's state now: a database server that freezes after start-up shows as down
within seconds (and back when it thaws), while the process stays live."""

from __future__ import annotations

import os
import signal

import httpx

from tests.support.system import (
    Services,
    free_port,
    service_config,
    start_servers,
    unique,
    wait_for,
)


def get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.HTTPError:
        return None


def test_a_frozen_database_shows_in_the_services_health_at_once(tmp_path):
    servers = start_servers(tmp_path / "servers")
    registry_port, gateway_port = free_port(), free_port()
    config = service_config(
        servers.endpoints, unique("calib_health").replace("-", "_"), gateway_port=gateway_port
    )
    services = Services(config=config, bus=servers.endpoints.bus, log_dir=tmp_path / "logs")
    mongodb = servers.processes["mongodb"].process.pid
    try:
        services.create_schema()
        services.start("registry", health_port=registry_port)
        services.start("gateway")
        for port in (registry_port, gateway_port):
            wait_for(
                lambda port=port: (r := get(port, "/healthz")) is not None and r.status_code == 200,
                timeout_s=60,
                what="the service to be ready",
            )
        assert get(registry_port, "/healthz").json()["service"] == "registry"

        os.kill(mongodb, signal.SIGSTOP)
        for port in (registry_port, gateway_port):
            down = wait_for(
                lambda port=port: (
                    (r := get(port, "/healthz")) is not None and r.status_code == 503 and r
                ),
                timeout_s=15,
                what="the frozen database to show",
            )
            assert down.json()["status"] == "unavailable"
            assert down.json()["checks"] == {"mongodb": False, "s3": True, "nats": True}
            assert get(port, "/livez").status_code == 200  # the process itself is fine

        os.kill(mongodb, signal.SIGCONT)
        wait_for(
            lambda: (r := get(registry_port, "/healthz")) is not None and r.status_code == 200,
            timeout_s=30,
            what="the database to be back",
        )
        assert get(registry_port, "/nothing").status_code == 404
    finally:
        os.kill(mongodb, signal.SIGCONT)
        services.stop()
        servers.stop()
