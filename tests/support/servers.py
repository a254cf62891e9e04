"""The test session's servers: containers of the production engines (MongoDB 7, MinIO,
NATS JetStream) when a Docker engine answers, else the embedded ones (nats-server,
SeaweedFS, the MongoDB-wire server). Tests see only their endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from calib_infra.devstack import Endpoints
from calib_infra.natsauth import BusSecrets, server_config
from tests.support.system import S3_ACCESS_KEY, S3_SECRET_KEY, start_servers

MONGODB_IMAGE = "mongo:7"
MINIO_IMAGE = "minio/minio:latest"
NATS_IMAGE = "nats:2.10-alpine"
NATS_CONFIG = "/etc/calib/nats.conf"


class TestServers(Protocol):
    @property
    def endpoints(self) -> Endpoints: ...

    def stop(self) -> None: ...


def docker_reachable() -> bool:
    """True when a Docker engine answers (the ``docker`` client alone is not enough)."""
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: embedded servers
        return False


@dataclass
class ContainerServers:
    """MongoDB 7, MinIO and NATS JetStream in containers (testcontainers)."""

    #: where the NATS container's configuration (with the bus's passwords) is written
    config_dir: Path
    bus: BusSecrets = field(default_factory=BusSecrets.generate)
    containers: dict[str, Any] = field(default_factory=dict)

    def specs(self) -> dict[str, Any]:
        """The containers, configured but not started."""
        from testcontainers.community.minio import MinioContainer
        from testcontainers.community.mongodb import MongoDbContainer
        from testcontainers.core.container import DockerContainer

        return {
            "mongodb": MongoDbContainer(MONGODB_IMAGE),
            "s3": MinioContainer(MINIO_IMAGE, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY),
            "nats": DockerContainer(NATS_IMAGE)
            .with_volume_mapping(str(self.nats_config()), NATS_CONFIG, "ro")
            .with_command(f"-c {NATS_CONFIG}")
            .with_exposed_ports(4222),
        }

    def nats_config(self) -> Path:
        """The same authenticated configuration as the embedded server's."""
        path = self.config_dir / "nats.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            server_config(
                self.bus.passwords,
                self.bus.issuer_public_key,
                listen="0.0.0.0:4222",
                monitor="0.0.0.0:8222",
                store_dir="/data/jetstream",
            )
        )
        path.chmod(0o644)  # read by the container's user
        return path

    def start(self) -> ContainerServers:
        try:
            for name, container in self.specs().items():
                self.containers[name] = container.start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def endpoints(self) -> Endpoints:
        return endpoints_of(self.containers, self.bus)

    def stop(self) -> None:
        for container in self.containers.values():
            container.stop()
        self.containers.clear()


def endpoints_of(containers: dict[str, Any], bus: BusSecrets) -> Endpoints:
    """Where started containers answer, as the services are configured."""
    mongodb, s3, nats = containers["mongodb"], containers["s3"], containers["nats"]
    host = nats.get_container_host_ip()
    return Endpoints(
        nats_url=f"nats://{host}:{nats.get_exposed_port(4222)}",
        mongodb_uri=mongodb.get_connection_url(),
        s3_endpoint=f"{s3.get_container_host_ip()}:{s3.get_exposed_port(s3.port)}",
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        bus=bus,
    )


def session_servers(data_dir: Path, *, use_docker: bool | None = None) -> TestServers:
    """The one choice of where the tests' servers come from."""
    if docker_reachable() if use_docker is None else use_docker:
        return ContainerServers(config_dir=data_dir).start()
    return start_servers(data_dir)
