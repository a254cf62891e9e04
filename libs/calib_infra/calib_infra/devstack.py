"""Real servers on loopback for development and tests: NATS JetStream (nats-server, one
or a cluster of several), S3 (SeaweedFS ``weed mini``) and a MongoDB-wire server
(SecantusDB)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from calib_infra.natsauth import BusSecrets, ClusterNode, server_config


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


def spawn_nats_server(
    name: str,
    data_dir: Path,
    bus: BusSecrets,
    *,
    port: int,
    monitor_port: int,
    log_name: str,
    cluster: ClusterNode | None = None,
) -> ManagedProcess:
    """nats-server with JetStream and authentication on (``natsauth.server_config``), its
    store in ``data_dir/name``, its configuration in ``data_dir/name.conf`` and its log in
    ``data_dir/logs/log_name.log``; a node of ``cluster`` if given."""
    store = data_dir / name
    store.mkdir(parents=True, exist_ok=True)
    config_file = data_dir / f"{name}.conf"
    config_file.touch(mode=0o600)  # it holds the passwords
    config_file.write_text(
        server_config(
            bus.passwords,
            bus.issuer_public_key,
            listen=f"127.0.0.1:{port}",
            monitor=f"127.0.0.1:{monitor_port}",
            store_dir=str(store),
            cluster=cluster,
        )
    )
    command = [binary("nats-server"), "-c", str(config_file)]
    return spawn(log_name, command, data_dir / "logs")


def nats_healthy(monitor_port: int, timeout_s: float, *, jetstream_only: bool) -> bool:
    """The server's health check answers OK in time: with ``jetstream_only``, JetStream is
    on; else also, in a cluster, the node is in contact with the meta leader and its
    streams and consumers are current (caught up after a restart)."""
    query = "?js-enabled-only=true" if jetstream_only else ""
    url = f"http://127.0.0.1:{monitor_port}/healthz{query}"
    return _answers(lambda: urllib.request.urlopen(url, timeout=timeout_s).status == 200)


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

    def with_nats_of(self, other: Endpoints | EmbeddedNatsCluster) -> Endpoints:
        """These servers, but the NATS server or cluster (and its secrets) of ``other``."""
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
        process = spawn_nats_server(
            "nats",
            self.data_dir,
            self.bus,
            port=self.ports.nats,
            monitor_port=self.ports.nats_monitor,
            log_name="nats-server",
        )
        return self._keep("nats", process)

    def nats_alive(self, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """JetStream answers its health check in time (a frozen server does not)."""
        return nats_healthy(self.ports.nats_monitor, timeout_s, jetstream_only=True)

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


@dataclass(frozen=True)
class NatsNodePorts:
    client: int = field(default_factory=free_port)
    monitor: int = field(default_factory=free_port)
    routes: int = field(default_factory=free_port)


@dataclass
class EmbeddedNatsCluster:
    """A NATS JetStream cluster of ``size`` nats-server nodes on loopback, named
    ``nats-1``..: routes between them log in with the cluster's own password; each node
    keeps its own JetStream store, with the accounts, users and auth callout of a lone
    server (:class:`EmbeddedServers`)."""

    data_dir: Path
    size: int = 3
    bus: BusSecrets = field(default_factory=BusSecrets.generate)
    route_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    name: str = "calib"
    ports: dict[str, NatsNodePorts] = field(init=False)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {f"nats-{index + 1}": NatsNodePorts() for index in range(self.size)}

    @property
    def nodes(self) -> list[str]:
        return list(self.ports)

    def url(self, node: str) -> str:
        return f"nats://127.0.0.1:{self.ports[node].client}"

    @property
    def nats_url(self) -> str:
        """Every node's URL, as ``CALIB_NATS_URL`` takes them."""
        return ",".join(self.url(node) for node in self.nodes)

    def spawn_node(self, node: str) -> ManagedProcess:
        ports = self.ports[node]
        membership = ClusterNode(
            cluster_name=self.name,
            server_name=node,
            listen=f"127.0.0.1:{ports.routes}",
            routes=tuple(f"127.0.0.1:{other.routes}" for other in self.ports.values()),
            password=self.route_password,
        )
        self.processes[node] = spawn_nats_server(
            node,
            self.data_dir,
            self.bus,
            port=ports.client,
            monitor_port=ports.monitor,
            log_name=node,
            cluster=membership,
        )
        return self.processes[node]

    def node_ready(self, node: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """The node is in the cluster with its JetStream state current."""
        return nats_healthy(self.ports[node].monitor, timeout_s, jetstream_only=False)

    def start(self) -> None:
        """Every node, waiting until each is ready (a meta leader is elected once most
        nodes are up, so they are all started first); all stopped if one fails."""
        try:
            for node in self.nodes:
                self.spawn_node(node)
            for node in self.nodes:
                wait_until(lambda node=node: self.node_ready(node), 60, node)
        except BaseException:
            self.stop()
            raise

    def kill(self, node: str) -> None:
        """SIGKILL one node (a crash)."""
        self.processes[node].kill()

    def restart(self, node: str) -> None:
        """Start a stopped node again on its store; returns once it has caught up."""
        self.spawn_node(node)
        wait_until(lambda: self.node_ready(node), 60, f"{node} to catch up")

    def stop(self) -> None:
        stop_all(list(self.processes.values()))
        self.processes.clear()
