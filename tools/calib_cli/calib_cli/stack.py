"""``calib run``: the whole system on one machine with embedded real servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from calib_app.access import new_token
from calib_cli.supervisor import Child, Supervisor
from calib_infra.config import DEV_S3_SECRET_KEY, Config, load_config
from calib_infra.devstack import EmbeddedServers, ServerPorts, spawn, wait_until
from calib_infra.mongo import prepare_database
from calib_infra.natsauth import BusSecrets, load_or_create_secrets

#: the bus's passwords and issuer key, made on first start, in the data folder
SECRETS_FILE = "secrets.json"

SERVICES = ("registry", "scheduler", "lifecycle", "gateway")
#: An embedded server is started unless its variable points at an external one.
EXTERNAL_SERVER_VARIABLES = {
    "nats": "CALIB_NATS_URL",
    "s3": "CALIB_S3_ENDPOINT",
    "mongodb": "CALIB_MONGODB_URI",
}


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret in ``path``, made on first use and readable by its owner only."""
    if path.exists():
        return path.read_text().strip()
    secret = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    return secret


def with_local_secrets(config: Config) -> Config:
    """No known secret on one machine either (SPEC §12): the admin token and the S3 key,
    unless set, are generated once into the data folder (the bus's are in SECRETS_FILE)."""
    folder = config.data_path
    token = config.bootstrap_admin_token or kept_secret(folder / "admin-token", new_token)
    s3_secret_key = config.s3_secret_key
    if s3_secret_key == DEV_S3_SECRET_KEY:
        s3_secret_key = kept_secret(folder / "s3-secret-key", lambda: secrets.token_urlsafe(32))
    return msgspec.structs.replace(config, bootstrap_admin_token=token, s3_secret_key=s3_secret_key)


@dataclass
class System:
    """Embedded servers plus every service as its own process, all supervised."""

    config: Config
    token: str
    servers: EmbeddedServers | None = None
    supervisor: Supervisor | None = None
    service_env: dict[str, str] = field(default_factory=dict)
    bus: BusSecrets | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    @property
    def data_path(self) -> Path:
        return self.config.data_path.resolve()

    def start_servers(self) -> None:
        config, env = self.config, os.environ
        self.data_path.mkdir(parents=True, exist_ok=True)
        self.bus = load_or_create_secrets(self.data_path / SECRETS_FILE)
        self.servers = EmbeddedServers(
            data_dir=self.data_path,
            ports=ServerPorts(
                nats=config.nats_port, s3=config.s3_port, mongodb=config.mongodb_port
            ),
            s3_access_key=config.s3_access_key,
            s3_secret_key=config.s3_secret_key,
            bus=self.bus,
        )
        self.supervisor = Supervisor([], self.data_path / "supervisor.json", say)
        embedded = [
            name for name, variable in EXTERNAL_SERVER_VARIABLES.items() if variable not in env
        ]
        for name in embedded:
            self.supervisor.add(
                Child(
                    name,
                    launch=lambda name=name: self.servers.spawn_server(name),
                    probe=lambda name=name: self.servers.alive(name),
                )
            )
        for name in embedded:
            wait_until(lambda name=name: self.servers.alive(name), 60, name)
        endpoints = self.servers.endpoints
        self.service_env = {
            **env,
            "CALIB_NATS_URL": env.get("CALIB_NATS_URL", endpoints.nats_url),
            "CALIB_S3_ENDPOINT": env.get("CALIB_S3_ENDPOINT", endpoints.s3_endpoint),
            "CALIB_MONGODB_URI": env.get("CALIB_MONGODB_URI", endpoints.mongodb_uri),
            "CALIB_BOOTSTRAP_ADMIN_TOKEN": self.token,
            "CALIB_S3_SECRET_KEY": self.config.s3_secret_key,
            "CALIB_LOG_FORMAT": env.get("CALIB_LOG_FORMAT", "console"),
            "CALIB_FILE_CACHE_DIR": env.get(
                "CALIB_FILE_CACHE_DIR", str(self.data_path / "file-cache")
            ),
            "CALIB_SUPERVISOR_STATE_FILE": str(self.supervisor.state_file),
        }

    def prepare_database(self) -> None:
        """Collections and indexes, made here once before any service starts (services
        only check them)."""
        config = Config(**{**_as_dict(self.config), **_service_overrides(self)})
        wait_until(lambda: asyncio.run(prepare_database(config)) is None, 60, "the database schema")

    def start_services(self) -> None:
        log_dir = self.data_path / "logs"
        names = [*SERVICES, *(f"stacker-{i + 1}" for i in range(self.config.stacker_replicas))]
        for name in names:
            service = name.split("-")[0]
            module = f"calib_{service}.main"
            env = {
                **self.service_env,
                **self.bus.environment(service),  # each service is a bus user of its own
                "CALIB_SERVICE_INSTANCE": name,
            }
            command = [sys.executable, "-m", module]
            self.supervisor.add(
                Child(name, launch=lambda n=name, c=command, e=env: spawn(n, c, log_dir, env=e))
            )

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        def healthy() -> bool:
            self.supervisor.check()
            return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200

        wait_until(healthy, timeout_s, "the gateway")

    def supervise_forever(self) -> None:
        while True:
            self.supervisor.check()
            time.sleep(0.5)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()


def say(message: str) -> None:
    with contextlib.suppress(OSError):  # the terminal may be gone already
        print(message, file=sys.stderr, flush=True)


def plugin_token(system: System, observatory_id: str) -> str:
    """A new plugin token of the observatory (the simulator acts as its plugin)."""
    response = httpx.post(
        f"{system.base_url}/api/v1/admin/observatories/{observatory_id}/plugin-tokens",
        headers={"Authorization": f"Bearer {system.token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["token"]


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
    config = with_local_secrets(load_config())
    system = System(config=config, token=config.bootstrap_admin_token)
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
                demo_plan(demo_observatory),
                url=system.base_url,
                nats_url=system.service_env["CALIB_NATS_URL"],
                token=plugin_token(system, demo_observatory),
            )
        print(
            "\ncalib is running\n"
            f"  admin page : {system.base_url}/admin/\n"
            f"  API docs   : {system.base_url}/api/docs\n"
            f"  admin token: {system.token}\n"
            f"  S3         : {system.service_env['CALIB_S3_ENDPOINT']} bucket {config.s3_bucket} "
            f"(access key {config.s3_access_key})\n"
            f"  MongoDB    : {system.service_env['CALIB_MONGODB_URI']}"
            f" database {config.mongodb_db}\n"
            f"  NATS       : {system.service_env['CALIB_NATS_URL']} (authenticated: plugins by "
            f"token, services and tools by the passwords in {system.data_path / SECRETS_FILE})\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        system.supervise_forever()
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
