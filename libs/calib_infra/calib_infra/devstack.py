"""Real servers on loopback for development and tests: NATS JetStream (nats-server),
S3 (SeaweedFS ``weed mini``) and a MongoDB-wire server (SecantusDB)."""

from __future__ import annotations

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


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL (a crash, for tests)."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        self.process.wait()


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
        )

    def start_nats(self) -> None:
        store = self.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        self.processes["nats"] = spawn(
            "nats-server",
            [
                binary("nats-server"),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.ports.nats),
                "-m",
                str(self.ports.nats_monitor),
                "-js",
                "-sd",
                str(store),
            ],
            self.log_dir,
        )
        url = f"http://127.0.0.1:{self.ports.nats_monitor}/healthz?js-enabled-only=true"
        wait_until(lambda: urllib.request.urlopen(url, timeout=1).status == 200, 30, "nats-server")

    def start_s3(self) -> None:
        store = self.data_dir / "s3"
        store.mkdir(parents=True, exist_ok=True)
        extra = [free_port() for _ in range(4)]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
        }
        self.processes["s3"] = spawn(
            "seaweedfs",
            [
                binary("weed"),
                f"-logdir={self.log_dir}",
                "mini",
                f"-dir={store}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-s3.port={self.ports.s3}",
                f"-master.port={extra[0]}",
                f"-volume.port={extra[1]}",
                f"-filer.port={extra[2]}",
                f"-admin.port={extra[3]}",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
            self.log_dir,
            env=env,
        )
        from minio import Minio

        client = Minio(
            f"127.0.0.1:{self.ports.s3}",
            access_key=self.s3_access_key,
            secret_key=self.s3_secret_key,
            secure=False,
        )
        wait_until(lambda: client.bucket_exists("readiness-probe") is not None, 60, "seaweedfs s3")

    def start_mongodb(self) -> None:
        store = self.data_dir / "mongodb"
        store.mkdir(parents=True, exist_ok=True)
        self.processes["mongodb"] = spawn(
            "secantusdb",
            [
                binary("secantusd-py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.mongodb),
                "--storage-path",
                str(store),
                "--log-level",
                "WARNING",
            ],
            self.log_dir,
        )
        wait_until(lambda: port_open(self.ports.mongodb), 60, "secantusdb")

    def start(self, nats: bool = True, s3: bool = True, mongodb: bool = True) -> None:
        """Start the servers asked for; if one fails, stop those already started."""
        try:
            if nats:
                self.start_nats()
            if s3:
                self.start_s3()
            if mongodb:
                self.start_mongodb()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.processes.clear()
