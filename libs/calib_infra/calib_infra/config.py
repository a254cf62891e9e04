"""Configuration from ``CALIB_*`` environment variables, parsed once at start-up."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from calib_core import wiring
from calib_core.limits import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_IMAGE_PIXELS, ImageLimits

PREFIX = "CALIB_"


#: the development defaults of secrets: refused in production mode (SPEC §12)
DEV_S3_SECRET_KEY = "calib-dev-secret"


#: JetStream keeps a stream on 1 to 5 servers
MAX_STREAM_REPLICAS = 5


NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def nats_servers(urls: str) -> list[str]:
    """The servers of ``CALIB_NATS_URL``: one URL, or several separated by commas (the
    nodes of a cluster; a client connects to any and fails over to the others)."""
    servers = [url.strip() for url in urls.split(",")]
    for url in servers:
        scheme, separator, address = url.partition("://")
        if not (separator and scheme in NATS_SCHEMES and address):
            raise ValueError(
                f"CALIB_NATS_URL: {url!r} is not a NATS URL (nats://host:port, or tls://,"
                " ws://, wss://; several separated by commas)"
            )
    return servers


class Config(msgspec.Struct, kw_only=True, frozen=True):
    # "production" refuses to start with a known default secret or no bus credentials
    mode: Literal["development", "production"] = "development"
    # one server's URL or a cluster's, separated by commas (see nats_servers)
    nats_url: str = "nats://127.0.0.1:4222"
    # this process's own bus identity (SPEC §12): a service's user and password, or a
    # plugin's token
    nats_user: str = ""
    nats_password: str = ""
    nats_token: str = ""
    # the gateway's only: the key that signs admitted plugins (the auth callout's issuer)
    # and the system account's password (to close a revoked plugin's connections)
    nats_issuer_seed: str = ""
    nats_system_password: str = ""
    mongodb_uri: str = "mongodb://127.0.0.1:27017/?retryWrites=false"
    mongodb_db: str = "calib"
    s3_endpoint: str = "127.0.0.1:8333"
    s3_access_key: str = "calib"
    s3_secret_key: str = DEV_S3_SECRET_KEY
    s3_bucket: str = "calib"
    s3_secure: bool = False
    # where plugins reach S3, if not at s3_endpoint: the presigned upload URLs of
    # POST /uploads are signed for it ("host:port" with s3_secure's scheme, or a URL
    # "https://host:port"); "" = s3_endpoint
    s3_public_endpoint: str = ""
    bootstrap_admin_token: str = ""
    sweep_interval_s: float = 300.0
    expiry_check_interval_s: float = 86400.0
    retention_interval_s: float = 86400.0
    maintenance_poll_s: float = 60.0
    clock_offset_file: str = ""  # tests only: see calib_infra.clock
    stacker_memory_limit_mb: int = 1024
    stacker_ack_wait_s: float = 30.0
    # poison messages (SPEC §12): failed deliveries of a message before it is a dead letter
    max_deliveries: Annotated[int, msgspec.Meta(ge=1)] = 10
    # the stream's bounds: messages older or beyond the size go first (0 = no bound)
    stream_max_age_days: Annotated[float, msgspec.Meta(ge=0)] = wiring.STREAM.max_age_days
    stream_max_gb: Annotated[float, msgspec.Meta(ge=0)] = wiring.STREAM.max_gb
    # on how many servers of a NATS cluster the stream (and its consumers) are kept: 1 on a
    # single server, 3 on a 3-node cluster (it survives one node down)
    stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=MAX_STREAM_REPLICAS)] = 1
    # local copies of stored files the stacker and lifecycle read (see calib_infra.filecache)
    file_cache_dir: str = ""  # "" = <system temp dir>/calib-file-cache
    file_cache_mb: Annotated[int, msgspec.Meta(ge=0)] = 4096  # 0 = no cache
    max_upload_mb: int = 512
    # SPEC §12: what a frame's or an uploaded master's header may declare (pixels, a
    # tile-compressed image's by ZNAXISn) and how far into a file its header may end
    max_image_pixels: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_MAX_IMAGE_PIXELS
    max_header_bytes: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_MAX_HEADER_BYTES
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    nats_port: int = 4222
    s3_port: int = 8333
    mongodb_port: int = 27017
    data_dir: str = ".data"
    stacker_replicas: int = 2
    simulate: bool = True
    service_instance: str = ""
    # a service's own health endpoint (GET /livez, /healthz) for container probes; 0 = none
    health_port: int = 0
    health_host: str = "127.0.0.1"
    # set by `calib run`: where its supervisor reports restarts (shown by /health)
    supervisor_state_file: str = ""

    def __post_init__(self) -> None:
        nats_servers(self.nats_url)  # a malformed list fails at start-up, naming the URL

    @property
    def nats_servers(self) -> list[str]:
        return nats_servers(self.nats_url)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_image_pixels, max_header_bytes=self.max_header_bytes)

    def unsafe_secrets(self) -> list[str]:
        """What makes this configuration unfit for production: known default secrets,
        or no credentials of its own on the bus."""
        problems = []
        if self.s3_secret_key == DEV_S3_SECRET_KEY:
            problems.append("CALIB_S3_SECRET_KEY is the development default")
        if not (self.nats_token or (self.nats_user and self.nats_password)):
            problems.append("no bus credentials (CALIB_NATS_USER and CALIB_NATS_PASSWORD)")
        return problems

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def file_cache_path(self) -> Path:
        return Path(self.file_cache_dir or Path(tempfile.gettempdir()) / "calib-file-cache")


def load_config(environ: dict[str, str] | None = None) -> Config:
    """Read every ``CALIB_<FIELD>`` variable; unknown or malformed values fail loudly."""
    env = os.environ if environ is None else environ
    raw = {
        name: env[PREFIX + name.upper()]
        for name in Config.__struct_fields__
        if PREFIX + name.upper() in env
    }
    return msgspec.convert(raw, Config, strict=False)
