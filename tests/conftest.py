"""Shared fixtures: one set of real servers per test session (started lazily), the
services as real processes, an API client with the bootstrap admin token."""

from __future__ import annotations

import httpx
import pytest

from tests.support.clock import MovableClock
from tests.support.plugin import Plugin
from tests.support.servers import session_servers
from tests.support.system import (
    ADMIN_TOKEN,
    Services,
    compile_kernels,
    free_port,
    service_config,
    unique,
)

TEN_YEARS_S = 10 * 365 * 86400.0


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    servers = session_servers(tmp_path_factory.mktemp("servers"))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def system(servers, tmp_path_factory):
    """The five services (two stacker replicas) against the session's servers."""
    # The clock is movable (tests.support.clock); the daily maintenance runs once at start-up
    # only, so a test that moves the clock runs expiry and retention itself, for its observatory.
    config = service_config(
        servers.endpoints,
        unique("calib_e2e").replace("-", "_"),
        gateway_port=free_port(),
        sweep_interval_s=3.0,
        clock_offset_file=str(tmp_path_factory.mktemp("clock") / "offset"),
        expiry_check_interval_s=TEN_YEARS_S,
        retention_interval_s=TEN_YEARS_S,
    )
    services = Services(
        config=config, bus=servers.endpoints.bus, log_dir=tmp_path_factory.mktemp("service-logs")
    )
    # numba's disk cache compiled once, here, on both cores (not in three services at once)
    kernels_compiled = compile_kernels()
    try:
        services.start_all(stackers=2, numerics_ready=kernels_compiled)
        services.wait_ready()
        yield services
    finally:
        services.stop()


@pytest.fixture(scope="session")
def admin(system):
    with httpx.Client(
        base_url=system.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def clock(system):
    """The services' clock, for a test that moves it; back to real time afterwards."""
    movable = MovableClock(system.config.clock_offset_file)
    try:
        yield movable
    finally:
        movable.reset()


@pytest.fixture
def observatory(admin):
    """A new observatory for one test (tests share the services, not their data)."""
    observatory_id = unique("obs")
    response = admin.post(
        "/api/v1/admin/observatories", json={"id": observatory_id, "name": "Test"}
    )
    assert response.status_code == 201, response.text
    return observatory_id


@pytest.fixture(scope="session")
def plugin(system):
    """A capture plugin publishing to the session's services."""
    return Plugin(system.config)
