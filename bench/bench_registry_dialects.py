"""Registry throughput on a mixed-dialect stream: frames whose headers are written as
every supported capture program writes them (tests/support/dialects.py; the events carry
only the object, so every field is read from the header), against the same stream of
N.I.N.A. 3.x headers only. Goal: ratio >= 0.9.

Not settled yet: the two streams still differ in the registration trigger's work (how
many of their frames fall into groups that reach a stacking threshold), which dominates
the figure more than reading the headers does (measured ratios 1.4 to 2.8).

    uv run python bench/bench_registry_dialects.py   # 3,000 events per run
    CALIB_BENCH_QUICK=1 uv run python ...            # 300 events (smoke test)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import uuid
from itertools import cycle, islice
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_registry import (  # noqa: E402
    OBSERVATORY,
    ROUNDS,
    best_of_alternated,
    prepare_database,
    publish_and_wait,
    stored_frames,
    upload,
)

from calib_core import events  # noqa: E402
from calib_core.fitsheader import BLOCK  # noqa: E402
from tests.support.dialects import DIALECTS  # noqa: E402
from tests.support.hostile import header_bytes  # noqa: E402
from tests.support.system import Services, service_config, start_servers, wait_for  # noqa: E402

WIDTH, HEIGHT = 64, 48
#: every program's header that registers from the header alone (it names a frame type)
TYPED = [(cards, expected) for _, cards, expected in DIALECTS if "frame_type" in expected]
_NINA = next(cards for program, cards, _ in DIALECTS if program == "N.I.N.A. 3.x")
#: N.I.N.A. 3.x headers, one per program above with its frame type and a camera of its
#: own, so that both streams fall into the same configurations (the registration
#: trigger's work) and differ in how their headers are written only
NINA = [
    [
        (key, {"IMAGETYP": f"'{expected['frame_type'].value.upper()}'"}.get(key, value))
        if key != "INSTRUME"
        else (key, f"'camera {index}'")
        for key, value in _NINA
    ]
    for index, (_, expected) in enumerate(TYPED)
]
MIXED = [cards for cards, _ in TYPED]


def files_of(headers: list[list[tuple[str, str]]], count: int) -> list[bytes]:
    """``count`` distinct 16-bit images, each with the next header of ``headers``."""
    structure = [("SIMPLE", "T"), ("BITPIX", 16), ("NAXIS", 2)]
    structure += [("NAXIS1", WIDTH), ("NAXIS2", HEIGHT)]
    pixels = WIDTH * HEIGHT * 2
    files = []
    for index, cards in enumerate(islice(cycle(headers), count)):
        data = bytearray(-(-pixels // BLOCK) * BLOCK)
        data[:8] = index.to_bytes(8, "big")
        files.append(header_bytes(*structure, *cards) + bytes(data))
    return files


def one_run(servers, workdir: Path, database: str, files: list[bytes]) -> float:
    """Events per second registered from these files' headers alone."""
    config = service_config(servers.endpoints, database)
    asyncio.run(prepare_database(config))
    messages = []
    for data, key in zip(files, upload(config, files), strict=True):
        event = events.FrameRegistered(
            event_id=uuid.uuid4().hex,
            observatory_id=OBSERVATORY,
            storage_key=key,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        messages.append((msgspec.json.encode(event), event.event_id))
    services = Services(config=config, bus=servers.endpoints.bus, log_dir=workdir / database)
    services.start("registry")
    try:
        log = services.processes["registry"].log_path
        wait_for(lambda: '"connected"' in log.read_text(), timeout_s=60, what="the registry")
        seconds = asyncio.run(publish_and_wait(config, messages))
    finally:
        services.stop()
    stored = asyncio.run(stored_frames(config))
    if stored != len(files):
        raise AssertionError(f"{stored} frames stored for {len(files)} events")
    return len(files) / seconds


def registry_throughput_dialects(count: int, workdir: Path) -> dict:
    servers = start_servers(workdir / "servers")
    streams = {"nina": files_of(NINA, count), "mixed": files_of(MIXED, count)}

    def measure(kind: str, round_: int) -> float:
        database = f"calib_bench_dialects_{kind}_{round_}"
        return one_run(servers, workdir, database, streams[kind])

    try:
        best = best_of_alternated(["nina", "mixed"], measure)
    finally:
        servers.stop()
    value, reference = best["mixed"], best["nina"]
    return {
        "name": "registry_throughput_dialects",
        "value": value,
        "unit": "events/s",
        "reference": reference,
        "ratio": value / reference,
        "note": f"{count} events per run, best of {ROUNDS} alternated runs each; value: the "
        f"headers of {len(TYPED)} capture programs' dialects in turn; reference: N.I.N.A. "
        "3.x headers of the same frame types and as many cameras; every field read from "
        "the header",
    }


def run() -> list[dict]:
    count = 300 if os.environ.get("CALIB_BENCH_QUICK") == "1" else 3000
    with tempfile.TemporaryDirectory(prefix="calib-bench-dialects-") as tmp:
        return [registry_throughput_dialects(count, Path(tmp))]


if __name__ == "__main__":
    for entry in run():
        print(entry)
