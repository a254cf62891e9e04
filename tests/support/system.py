"""Test support: real servers and the services as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import nats.errors
from prometheus_client.parser import text_string_to_metric_families

from calib_core.busaccess import CLI_USER
from calib_infra import bus, metrics
from calib_infra.config import Config
from calib_infra.devstack import (
    EmbeddedServers,
    Endpoints,
    ManagedProcess,
    ServerPorts,
    free_port,
    spawn,
    stop_all,
)
from calib_infra.mongo import prepare_database
from calib_infra.natsauth import BusSecrets
from calib_stacker.numerics import KERNEL_PARTS

S3_ACCESS_KEY = "calib-test"
S3_SECRET_KEY = "calib-test-secret"
ADMIN_TOKEN = "calib_test_admin_token"


def start_servers(data_dir: Path) -> EmbeddedServers:
    servers = EmbeddedServers(
        data_dir=data_dir,
        ports=ServerPorts(nats=free_port(), s3=free_port(), mongodb=free_port()),
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
    )
    servers.start()
    return servers


def service_config(endpoints: Endpoints, database: str, **overrides) -> Config:
    """Service settings for servers at ``endpoints`` (running or not yet)."""
    values = dict(
        nats_url=endpoints.nats_url,
        # the tools' own bus user; each service connects as itself (Services.start)
        **endpoints.bus.identity(CLI_USER),
        mongodb_uri=endpoints.mongodb_uri,
        mongodb_db=database,
        s3_endpoint=endpoints.s3_endpoint,
        s3_access_key=endpoints.s3_access_key,
        s3_secret_key=endpoints.s3_secret_key,
        s3_bucket=database.replace("_", "-"),
        bootstrap_admin_token=ADMIN_TOKEN,
        log_format="json",
        log_level="INFO",
        stacker_ack_wait_s=4.0,
        file_cache_dir=str(Path(tempfile.gettempdir()) / f"calib-file-cache-{database}"),
    )
    values.update(overrides)
    return Config(**values)


def environment(config: Config, instance: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIB_")}
    for name in config.__struct_fields__:
        value = getattr(config, name)
        env[f"CALIB_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env["CALIB_SERVICE_INSTANCE"] = instance
    return env


@dataclass
class Services:
    """Every service as its own process, against one set of servers and one database."""

    config: Config
    log_dir: Path
    #: the servers' bus secrets: each service connects as its own user
    bus: BusSecrets
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    health_urls: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    def start(self, name: str, **overrides) -> ManagedProcess:
        """Start service ``name`` ("stacker-2" is a replica) with ``overrides`` to its config;
        each answers ``/healthz`` on a port of its own (the gateway on its API port)."""
        service = name.split("-")[0]
        if service != "gateway":
            overrides.setdefault("health_port", free_port())
        overrides = {**self.bus.identity(service), **overrides}
        config = msgspec.structs.replace(self.config, **overrides)
        process = spawn(
            name,
            [sys.executable, "-m", f"calib_{service}.main"],
            self.log_dir,
            env=environment(config, name),
        )
        self.processes[name] = process
        self.health_urls[name] = (
            f"{self.base_url}/healthz"
            if service == "gateway"
            else f"http://127.0.0.1:{config.health_port}/healthz"
        )
        return process

    def create_schema(self) -> None:
        """The database's collections and indexes, before any of its services start."""
        asyncio.run(prepare_database(self.config))

    def start_all(
        self,
        stackers: int = 2,
        *,
        numerics_ready: Callable[[], None] | None = None,
        lifecycle: bool = True,
    ) -> None:
        """Every service (without ``lifecycle``, only those from frames to masters); those
        that load numba kernels (lifecycle, stackers) once ``numerics_ready`` returns (the
        others start meanwhile)."""
        self.create_schema()
        for name in ("gateway", "registry", "scheduler"):
            self.start(name)
        if numerics_ready is not None:
            numerics_ready()
        for name in (
            *(["lifecycle"] if lifecycle else []),
            *(f"stacker-{i + 1}" for i in range(stackers)),
        ):
            self.start(name)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every started service reports ready (connected to every dependency)."""
        deadline = time.monotonic() + timeout_s
        waiting = set(self.processes)
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                process = self.processes[name]
                if process.process.poll() is not None:
                    log = process.log_path.read_text()[-3000:]
                    raise RuntimeError(f"{name} exited:\n{log}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.health_urls[name], timeout=1).status_code == 200:
                        waiting.discard(name)
            time.sleep(0.2)
        if waiting:
            raise TimeoutError(f"not ready: {', '.join(sorted(waiting))}")

    def stop(self) -> None:
        stop_all(list(self.processes.values()))


#: Loads one part of the kernels holding a lock of its own: the test workers, each starting a
#: system, then compile a cold cache once between them instead of each compiling it all.
_COMPILE_ONE_PART = """
import fcntl, sys
from calib_stacker.numerics import load_kernels
with open(sys.argv[1], "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    load_kernels([sys.argv[2]])
"""


def compile_kernels() -> Callable[[], None]:
    """Start filling numba's disk cache, each part of the kernels in a process of its own
    (a cold cache takes a minute on one core); returns the wait for it to be done."""
    locks = Path(tempfile.gettempdir()) / f"calib-kernels-{os.getuid()}"
    locks.mkdir(exist_ok=True)
    compiling = [
        subprocess.Popen(
            [sys.executable, "-c", _COMPILE_ONE_PART, str(locks / f"{part}.lock"), part]
        )
        for part in KERNEL_PARTS
    ]

    def wait() -> None:
        for process in compiling:
            if process.wait() != 0:
                raise RuntimeError(f"compiling the kernels failed: {process.args}")

    return wait


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(check, timeout_s: float = 60.0, interval_s: float = 0.25, what: str = "condition"):
    """Poll ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def consumer_drained(config: Config, durable: str) -> bool:
    """True when the durable consumer has nothing pending and nothing unacknowledged;
    False while that is not known (on a cluster, the consumer may be electing a leader)."""

    async def check() -> bool:
        connection = await bus.connect(config)
        try:
            info = await connection.jetstream().consumer_info("CALIBRATION", durable)
            return info.num_pending == 0 and info.num_ack_pending == 0
        except nats.errors.TimeoutError:
            return False
        finally:
            await connection.close()

    return asyncio.run(check())


def consumers_waiting(config: Config, durable: str) -> int:
    """How many pull requests wait on the durable consumer: its idle replicas (0 if none
    has connected yet)."""

    from nats.js.errors import NotFoundError

    async def check() -> int:
        connection = await bus.connect(config)
        try:
            info = await connection.jetstream().consumer_info("CALIBRATION", durable)
            return info.num_waiting or 0
        except NotFoundError:
            return 0
        finally:
            await connection.close()

    return asyncio.run(check())


def metrics_url(system: Services, name: str) -> str:
    return system.health_urls[name].removesuffix("/healthz") + "/metrics"


def scrape(system: Services, name: str) -> Counter:
    """Service ``name``'s Prometheus metrics (its ``/metrics``), each sample's value by
    (sample name, sorted labels)."""
    response = httpx.get(metrics_url(system, name), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == metrics.CONTENT_TYPE
    samples = Counter()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] += sample.value
    return samples
