"""Real servers on loopback for development and tests: NATS JetStream (nats-server),
S3 (SeaweedFS ``weed mini``) and a MongoDB-wire server (SecantusDB)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from calib_infra.natsauth import BusSecrets, server_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def binary(name: str) -> str:
    """A server binary installed beside this Python (the venv's bin) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run 'uv sync' first")
    return found


#: How long a liveness probe waits for a server's answer.
PROBE_TIMEOUT_S = 5.0


def _answers(check) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - no answer, or a wrong one: not alive
        return False


def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not become ready within {timeout_s:.0f} s")


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process group (the child and anything it started), only
        while the child has not been reaped: its pid may belong to another process later."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def wait_until(self, deadline: float) -> bool:
        """Wait for the exit until ``deadline`` (monotonic); True if it exited."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        self.signal(signal.SIGTERM)
        if not self.wait_until(time.monotonic() + timeout_s):
            self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash, for tests; or a child that would not stop)."""
        self.signal(signal.SIGKILL)
        self.process.wait()


def stop_all(processes: list[ManagedProcess], grace_s: float = 7.0) -> None:
    """SIGTERM to every process at once, SIGKILL to those still there after ``grace_s``:
    one grace period for all, not one each."""
    for process in processes:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.wait_until(deadline)
    for process in processes:
        process.kill()


def _die_with_parent() -> None:
    """In the child before exec: be killed when the parent dies, however it dies (Linux).

    SIGKILL, not SIGTERM: a hung server ignores SIGTERM, and every server and service
    here recovers from being killed outright (journals, redelivery)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    name: str, command: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> ManagedProcess:
    """Start a process in its own process group, its output in ``log_dir/name.log``.

    The child is stopped with its parent even if the parent is killed outright, so a
    ``make run`` or a test session never leaves servers behind."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    log.close()
    return ManagedProcess(name, process, log_path)


@dataclass(frozen=True)
class Endpoints:
    """Where a set of servers answers, whoever runs them (embedded here, or containers)."""

    nats_url: str
    mongodb_uri: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    #: the bus's passwords and issuer key (its server accepts no anonymous connection)
    bus: BusSecrets

    def with_nats_of(self, other: Endpoints) -> Endpoints:
        """These servers, but the NATS server (and its secrets) of ``other``."""
        return dataclasses.replace(self, nats_url=other.nats_url, bus=other.bus)


@dataclass
class ServerPorts:
    nats: int
    s3: int
    mongodb: int
    nats_monitor: int = field(default_factory=free_port)


@dataclass
class EmbeddedServers:
    """Starts (and stops) the three servers with data under ``data_dir``."""

    data_dir: Path
    ports: ServerPorts
    s3_access_key: str
    s3_secret_key: str
    bus: BusSecrets = field(default_factory=BusSecrets.generate)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            nats_url=f"nats://127.0.0.1:{self.ports.nats}",
            # retryWrites=false: the MongoDB-wire server slows down with retryable writes
            mongodb_uri=f"mongodb://127.0.0.1:{self.ports.mongodb}/?retryWrites=false",
            s3_endpoint=f"127.0.0.1:{self.ports.s3}",
            s3_access_key=self.s3_access_key,
            s3_secret_key=self.s3_secret_key,
            bus=self.bus,
        )

    def spawn_nats(self) -> ManagedProcess:
        """nats-server with JetStream and authentication on (``natsauth.server_config``)."""
        store = self.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        config_file = self.data_dir / "nats.conf"
        config_file.touch(mode=0o600)  # it holds the passwords
        config_file.write_text(
            server_config(
                self.bus.passwords,
                self.bus.issuer_public_key,
                listen=f"127.0.0.1:{self.ports.nats}",
                monitor=f"127.0.0.1:{self.ports.nats_monitor}",
                store_dir=str(store),
            )
        )
        command = [binary("nats-server"), "-c", str(config_file)]
        return self._keep("nats", spawn("nats-server", command, self.log_dir))

    def nats_alive(self, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """JetStream answers its health check in time (a frozen server does not)."""
        url = f"http://127.0.0.1:{self.ports.nats_monitor}/healthz?js-enabled-only=true"
        return _answers(lambda: urllib.request.urlopen(url, timeout=timeout_s).status == 200)

    def spawn_s3(self) -> ManagedProcess:
        store = self.data_dir / "s3"
        store.mkdir(parents=True, exist_ok=True)
        extra = [free_port() for _ in range(4)]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
        }
        command = [binary("weed"), f"-logdir={self.log_dir}", "mini", f"-dir={store}"]
        command += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={self.ports.s3}"]
        command += [f"-master.port={extra[0]}", f"-volume.port={extra[1]}"]
        command += [f"-filer.port={extra[2]}", f"-admin.port={extra[3]}", "-webdav=false"]
        command += ["-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        return self._keep("s3", spawn("seaweedfs", command, self.log_dir, env=env))

    def s3_alive(self, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """S3 answers a signed request in time."""
        import urllib3
        from minio import Minio

        client = Minio(
            f"127.0.0.1:{self.ports.s3}",
            access_key=self.s3_access_key,
            secret_key=self.s3_secret_key,
            secure=False,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
                retries=urllib3.Retry(total=0),
            ),
        )
        return _answers(lambda: client.bucket_exists("liveness-probe") is not None)

    def spawn_mongodb(self) -> ManagedProcess:
        store = self.data_dir / "mongodb"
        store.mkdir(parents=True, exist_ok=True)
        command = [binary("secantusd-py"), "--host", "127.0.0.1", "--port", str(self.ports.mongodb)]
        command += ["--storage-path", str(store), "--log-level", "WARNING"]
        return self._keep("mongodb", spawn("secantusdb", command, self.log_dir))

    def mongodb_alive(self, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """The MongoDB-wire server answers a ping in time (it can hang with its port open)."""
        from pymongo import MongoClient

        def ping() -> bool:
            timeout_ms = int(timeout_s * 1000)
            with MongoClient(
                self.endpoints.mongodb_uri,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                socketTimeoutMS=timeout_ms,
            ) as client:
                return client.admin.command("ping").get("ok") == 1

        return _answers(ping)

    def spawn_server(self, name: str) -> ManagedProcess:
        return {"nats": self.spawn_nats, "s3": self.spawn_s3, "mongodb": self.spawn_mongodb}[name]()

    def alive(self, name: str) -> bool:
        return {"nats": self.nats_alive, "s3": self.s3_alive, "mongodb": self.mongodb_alive}[name]()

    def start(self, nats: bool = True, s3: bool = True, mongodb: bool = True) -> None:
        """Start the servers asked for and wait until each answers; if one fails, stop
        those already started."""
        names = [
            name for name, wanted in (("nats", nats), ("s3", s3), ("mongodb", mongodb)) if wanted
        ]
        try:
            for name in names:
                self.spawn_server(name)
            for name in names:
                wait_until(lambda name=name: self.alive(name), 60, name)
        except BaseException:
            self.stop()
            raise

    def start_nats(self) -> None:
        self.start(s3=False, mongodb=False)

    def _keep(self, name: str, process: ManagedProcess) -> ManagedProcess:
        self.processes[name] = process
        return process

    def stop(self) -> None:
        stop_all(list(self.processes.values()))
        self.processes.clear()
