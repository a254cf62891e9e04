"""Configuration from ``CALIB_*`` environment variables, parsed once at start-up."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import msgspec

PREFIX = "CALIB_"


class Config(msgspec.Struct, kw_only=True, frozen=True):
    nats_url: str = "nats://127.0.0.1:4222"
    mongodb_uri: str = "mongodb://127.0.0.1:27017/?retryWrites=false"
    mongodb_db: str = "calib"
    s3_endpoint: str = "127.0.0.1:8333"
    s3_access_key: str = "calib"
    s3_secret_key: str = "calib-dev-secret"
    s3_bucket: str = "calib"
    s3_secure: bool = False
    bootstrap_admin_token: str = ""
    sweep_interval_s: float = 300.0
    expiry_check_interval_s: float = 86400.0
    retention_interval_s: float = 86400.0
    maintenance_poll_s: float = 60.0
    clock_offset_file: str = ""  # tests only: see calib_infra.clock
    stacker_memory_limit_mb: int = 1024
    stacker_ack_wait_s: float = 30.0
    # local copies of stored files the stacker and lifecycle read (see calib_infra.filecache)
    file_cache_dir: str = ""  # "" = <system temp dir>/calib-file-cache
    file_cache_mb: Annotated[int, msgspec.Meta(ge=0)] = 4096  # 0 = no cache
    max_upload_mb: int = 512
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
