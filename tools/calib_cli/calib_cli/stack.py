"""``calib run``: the whole system on one machine with embedded real servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field

import httpx

from calib_infra.config import Config, load_config
from calib_infra.devstack import EmbeddedServers, ManagedProcess, ServerPorts, spawn, wait_until
from calib_infra.mongo import prepare_database

SERVICES = ("registry", "scheduler", "lifecycle", "gateway")


def admin_token(config: Config) -> str:
    """CALIB_BOOTSTRAP_ADMIN_TOKEN, or one generated once and kept in the data folder."""
    if config.bootstrap_admin_token:
        return config.bootstrap_admin_token
    path = config.data_path / "admin-token"
    if path.exists():
        return path.read_text().strip()
    token = "calib_" + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


@dataclass
class System:
    """Embedded servers plus every service as its own process."""

    config: Config
    token: str
    servers: EmbeddedServers | None = None
    services: list[ManagedProcess] = field(default_factory=list)
    service_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    def start_servers(self) -> None:
        config, env = self.config, os.environ
        self.servers = EmbeddedServers(
            data_dir=config.data_path.resolve(),
            ports=ServerPorts(
                nats=config.nats_port, s3=config.s3_port, mongodb=config.mongodb_port
            ),
            s3_access_key=config.s3_access_key,
            s3_secret_key=config.s3_secret_key,
        )
        self.servers.start(
            nats="CALIB_NATS_URL" not in env,
            s3="CALIB_S3_ENDPOINT" not in env,
            mongodb="CALIB_MONGODB_URI" not in env,
        )
        self.service_env = {
            **env,
            "CALIB_NATS_URL": env.get("CALIB_NATS_URL", f"nats://127.0.0.1:{config.nats_port}"),
            "CALIB_S3_ENDPOINT": env.get("CALIB_S3_ENDPOINT", f"127.0.0.1:{config.s3_port}"),
            "CALIB_MONGODB_URI": env.get(
                "CALIB_MONGODB_URI", f"mongodb://127.0.0.1:{config.mongodb_port}/?retryWrites=false"
            ),
            "CALIB_BOOTSTRAP_ADMIN_TOKEN": self.token,
            "CALIB_LOG_FORMAT": env.get("CALIB_LOG_FORMAT", "console"),
            "CALIB_FILE_CACHE_DIR": env.get(
                "CALIB_FILE_CACHE_DIR", str(config.data_path.resolve() / "file-cache")
            ),
        }

    def prepare_database(self) -> None:
        """Collections and indexes, made here once before any service starts (services
        only check them)."""
        config = Config(**{**_as_dict(self.config), **_service_overrides(self)})
        wait_until(lambda: asyncio.run(prepare_database(config)) is None, 60, "the database schema")

    def start_services(self) -> None:
        log_dir = self.config.data_path.resolve() / "logs"
        names = [*SERVICES, *(f"stacker-{i + 1}" for i in range(self.config.stacker_replicas))]
        for name in names:
            module = "calib_stacker.main" if name.startswith("stacker") else f"calib_{name}.main"
            env = {**self.service_env, "CALIB_SERVICE_INSTANCE": name}
            self.services.append(spawn(name, [sys.executable, "-m", module], log_dir, env=env))

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        def healthy() -> bool:
            for service in self.services:
                if service.process.poll() is not None:
                    raise SystemExit(f"{service.name} exited; see {service.log_path}")
            return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200

        wait_until(healthy, timeout_s, "the gateway")

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        if self.servers is not None:
            self.servers.stop()


def ensure_demo_observatory(system: System, observatory_id: str) -> bool:
    """Create the demo observatory; True if it is new (and so needs demo data)."""
    response = httpx.post(
        f"{system.base_url}/api/v1/admin/observatories",
        json={"id": observatory_id, "name": "Demo Observatory"},
        headers={"Authorization": f"Bearer {system.token}"},
        timeout=10,
    )
    if response.status_code not in (201, 409):
        raise SystemExit(f"could not create the demo observatory: {response.text}")
    return response.status_code == 201


def run(demo_observatory: str = "demo") -> None:
    config = load_config()
    token = admin_token(config)
    system = System(config=config, token=token)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        print(f"calib: data in {config.data_path.resolve()}", flush=True)
        system.start_servers()
        system.prepare_database()
        system.start_services()
        system.wait_healthy()
        if ensure_demo_observatory(system, demo_observatory) and config.simulate:
            from calib_cli.simulate import demo_plan, run_simulation

            run_simulation(
                Config(**{**_as_dict(config), **_service_overrides(system)}),
                demo_plan(demo_observatory),
            )
        print(
            "\ncalib is running\n"
            f"  admin page : {system.base_url}/admin/\n"
            f"  API docs   : {system.base_url}/api/docs\n"
            f"  admin token: {token}\n"
            f"  S3         : {system.service_env['CALIB_S3_ENDPOINT']} bucket {config.s3_bucket} "
            f"(access key {config.s3_access_key})\n"
            f"  MongoDB    : {system.service_env['CALIB_MONGODB_URI']}"
            f" database {config.mongodb_db}\n"
            f"  NATS       : {system.service_env['CALIB_NATS_URL']}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while True:
            for service in system.services:
                if service.process.poll() is not None:
                    print(
                        f"calib: {service.name} exited (code {service.process.returncode}); "
                        f"see {service.log_path}",
                        file=sys.stderr,
                        flush=True,
                    )
                    raise KeyboardInterrupt
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        # a terminal's Ctrl-C reaches us twice (directly and forwarded by `uv run`): finish stopping
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(OSError):  # the terminal may be gone already
            print("\ncalib: stopping", flush=True)
        system.stop()


def _as_dict(config: Config) -> dict:
    return {name: getattr(config, name) for name in config.__struct_fields__}


def _service_overrides(system: System) -> dict:
    env = system.service_env
    return {
        "nats_url": env["CALIB_NATS_URL"],
        "s3_endpoint": env["CALIB_S3_ENDPOINT"],
        "mongodb_uri": env["CALIB_MONGODB_URI"],
    }
