"""Registry throughput behind the trust boundary: ``frame.registered`` events published
by a plugin that logs in with its plugin token (admitted by the gateway's auth callout,
publishing only its observatory's subject), registered by a registry with every check on
(storage-key prefix, header and image limits, numeric ranges), against the same run on
an open NATS server with an anonymous publisher.

    uv run python bench/bench_registry_auth.py     # 5,000 events per run
    CALIB_BENCH_QUICK=1 uv run python ...          # 500 events (smoke test)

The registry's own checks cannot be switched off (there is no such setting); they cost
microseconds per event against its reads and writes, so the reference run differs in
the bus only: no authentication, no permissions. Goal: ratio >= 0.95.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_registry import (  # noqa: E402
    OBSERVATORY,
    ROUNDS,
    best_of_alternated,
    frame_files,
    night,
    prepare_database,
    publish_and_wait,
    stored_frames,
    upload,
)

from calib_core import events  # noqa: E402
from calib_core.busaccess import inbox_prefix  # noqa: E402
from calib_infra.config import Config  # noqa: E402
from calib_infra.devstack import binary, free_port, spawn, wait_until  # noqa: E402
from tests.support.system import (  # noqa: E402
    ADMIN_TOKEN,
    Services,
    service_config,
    start_servers,
)


def events_of(config: Config, count: int) -> list[tuple[bytes, str]]:
    metadata = list(night(count, datetime.now(UTC) - timedelta(hours=12)))
    files = frame_files(metadata)
    messages = []
    for fields, data, key in zip(metadata, files, upload(config, files), strict=True):
        event = events.FrameRegistered(
            event_id=uuid.uuid4().hex,
            observatory_id=OBSERVATORY,
            storage_key=key,
            sha256=hashlib.sha256(data).hexdigest(),
            **fields,
        )
        messages.append((msgspec.json.encode(event), event.event_id))
    return messages


def one_run(servers, config: Config, count: int, workdir: Path, *, authenticated: bool) -> float:
    """Events per second registered in one run."""
    asyncio.run(prepare_database(config))
    messages = events_of(config, count)
    services = Services(config=config, bus=servers.endpoints.bus, log_dir=workdir / "logs")
    services.start("gateway")
    services.start("registry")
    try:
        services.wait_ready()
        if authenticated:
            issued = httpx.post(
                f"{services.base_url}/api/v1/admin/observatories/{OBSERVATORY}/plugin-tokens",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=10,
            )
            issued.raise_for_status()
            publisher = {"token": issued.json()["token"], "inbox_prefix": inbox_prefix(OBSERVATORY)}
        else:
            publisher = {}
        seconds = asyncio.run(publish_and_wait(config, messages, publisher))
    finally:
        services.stop()
    stored = asyncio.run(stored_frames(config))
    if stored != count:
        raise AssertionError(f"{stored} frames stored for {count} events")
    return count / seconds


def open_nats(workdir: Path):
    """A NATS server without authentication (the reference run's bus)."""
    port, monitor = free_port(), free_port()
    store = workdir / "open-nats"
    store.mkdir(parents=True)
    command = [binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)]
    process = spawn("open-nats", command + ["-js", "-sd", str(store)], workdir / "logs")
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{monitor}/healthz").status_code == 200, 30, "nats"
    )
    return process, f"nats://127.0.0.1:{port}"


def registry_throughput_auth(count: int, workdir: Path) -> dict:
    servers = start_servers(workdir / "servers")
    plain, plain_url = open_nats(workdir)

    def measure(kind: str, round_: int) -> float:
        database = f"calib_bench_{kind}_{round_}"
        config = service_config(servers.endpoints, database, gateway_port=free_port())
        if kind == "open":
            config = msgspec.structs.replace(config, nats_url=plain_url)
        return one_run(servers, config, count, workdir / database, authenticated=kind == "auth")

    try:
        best = best_of_alternated(["open", "auth"], measure)
    finally:
        plain.stop()
        servers.stop()
    value, reference = best["auth"], best["open"]
    return {
        "name": "registry_throughput_auth",
        "value": value,
        "unit": "events/s",
        "reference": reference,
        "ratio": value / reference,
        "note": f"{count} events per run, best of {ROUNDS} alternated runs each; "
        "value: a plugin token admitted by the auth callout, "
        "permissions enforced, every registry check on; reference: the same on an open NATS "
        "server with an anonymous publisher",
    }


def run() -> list[dict]:
    count = 500 if os.environ.get("CALIB_BENCH_QUICK") == "1" else 5000
    with tempfile.TemporaryDirectory(prefix="calib-bench-registry-auth-") as tmp:
        return [registry_throughput_auth(count, Path(tmp))]


if __name__ == "__main__":
    for entry in run():
        print(entry)
