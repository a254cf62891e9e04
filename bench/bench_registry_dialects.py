"""Registry throughput on a mixed-dialect stream: frames whose headers are written as
every supported capture program writes them (tests/support/dialects.py), FITS and XISF
(N.I.N.A.'s and PixInsight's, uncompressed and compressed: tests/support/xisf.py), the
events carrying only the object so that every field is read from the header; against
the same stream of N.I.N.A. 3.x FITS headers only. Goal: ratio >= 0.9.

The comparison is fair: each mixed frame's reference twin is a N.I.N.A. 3.x FITS header
written to give exactly the same §2 fields (checked before the runs), so both streams
make the same frames of the same configurations in the same order, and the registration
trigger does the same work for both; they differ only in how each header is written.
Reading a header costs about the same in both streams (about 1 ms per file, against tens
of milliseconds per event end to end): six runs on a shared 2-core machine measured
ratios of 0.94 to 1.27, the spread of the machine's load from one run to the next.

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
from collections.abc import Callable
from itertools import cycle, islice
from pathlib import Path

import msgspec
import numpy as np

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
from calib_core.headers import fields_from_header  # noqa: E402
from calib_core.imagefile import image_layout  # noqa: E402
from tests.support.dialects import DIALECTS  # noqa: E402
from tests.support.hostile import header_bytes  # noqa: E402
from tests.support.system import Services, service_config, start_servers, wait_for  # noqa: E402
from tests.support.xisf import XISF_DIALECTS, xisf_bytes  # noqa: E402

WIDTH, HEIGHT = 64, 48

#: A frame file of a stream: its index (made part of its pixels, so every file differs)
#: -> its bytes.
Maker = Callable[[int], bytes]


def fits_file(cards: list[tuple[str, str]]) -> Maker:
    """A 16-bit FITS image with ``cards``."""
    structure = [("SIMPLE", "T"), ("BITPIX", 16), ("NAXIS", 2)]
    structure += [("NAXIS1", WIDTH), ("NAXIS2", HEIGHT)]
    head = header_bytes(*structure, *cards)
    size = -(-WIDTH * HEIGHT * 2 // BLOCK) * BLOCK

    def make(index: int) -> bytes:
        return head + index.to_bytes(8, "big") + bytes(size - 8)

    return make


def xisf_file(keywords, properties, codec: str | None, shuffle: bool) -> Maker:
    """A 16-bit XISF image as a program of tests/support/xisf.py writes it."""

    def make(index: int) -> bytes:
        pixels = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
        pixels.flat[:4] = np.frombuffer(index.to_bytes(8, "big"), dtype=np.uint16)
        return xisf_bytes(
            pixels, keywords=keywords, properties=properties, codec=codec, shuffle=shuffle
        )

    return make


def nina_cards(fields: dict) -> list[tuple[str, str]]:
    """The N.I.N.A. 3.x FITS cards that give exactly ``fields`` (§2 fields)."""
    cards = [("IMAGETYP", f"'{fields['frame_type'].value.upper()}'")]
    cards += [(key, repr(fields["exposure_s"])) for key in ("EXPOSURE", "EXPTIME")]
    if "captured_at" in fields:
        cards.append(("DATE-OBS", f"'{fields['captured_at'].replace(tzinfo=None).isoformat()}'"))
    if "binning" in fields:
        x, y = fields["binning"].split("x")
        cards += [("XBINNING", x), ("YBINNING", y)]
    numbers = {
        "GAIN": "gain",
        "OFFSET": "offset",
        "SET-TEMP": "set_temperature_c",
        "CCD-TEMP": "temperature_c",
        "ROTATANG": "rotation_deg",
    }
    cards += [(key, repr(fields[field])) for key, field in numbers.items() if field in fields]
    texts = {"INSTRUME": "camera_name", "READOUTM": "readout_mode", "FILTER": "filter"}
    cards += [(key, f"'{fields[field]}'") for key, field in texts.items() if field in fields]
    return cards


#: Every program's header that registers from the header alone (it names a frame type),
#: FITS and XISF, and the fields it gives.
PROGRAMS: list[tuple[Maker, dict]] = [
    (fits_file(cards), expected) for _, cards, expected in DIALECTS if "frame_type" in expected
] + [
    (xisf_file(keywords, properties, codec, shuffle), expected)
    for _, keywords, properties, codec, shuffle, expected in XISF_DIALECTS
    if "frame_type" in expected
]
MIXED = [make for make, _ in PROGRAMS]
#: Each program's reference twin: N.I.N.A. 3.x FITS cards giving the same fields.
NINA = [fits_file(nina_cards(expected)) for _, expected in PROGRAMS]


def same_fields(mixed: list[Maker], reference: list[Maker]) -> None:
    """Raise unless each frame and its twin give the same §2 fields (so both streams make
    the same frames and the same trigger work)."""
    for index, (make, twin) in enumerate(zip(mixed, reference, strict=True)):
        found, wanted = (fields_from_header(image_layout(m(index)).header) for m in (make, twin))
        if found != wanted:
            raise AssertionError(f"program {index}: {found} != its N.I.N.A. twin's {wanted}")


def files_of(makers: list[Maker], count: int) -> list[bytes]:
    """``count`` distinct files, each made by the next of ``makers`` in turn."""
    return [make(index) for index, make in enumerate(islice(cycle(makers), count))]


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
    same_fields(MIXED, NINA)
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
        f"headers of {len(PROGRAMS)} capture programs' dialects in turn (FITS and XISF); "
        "reference: for each, a N.I.N.A. 3.x FITS header giving the same fields (same "
        "frames, configurations and trigger work); every field read from the header",
    }


def run() -> list[dict]:
    count = 300 if os.environ.get("CALIB_BENCH_QUICK") == "1" else 3000
    with tempfile.TemporaryDirectory(prefix="calib-bench-dialects-") as tmp:
        return [registry_throughput_dialects(count, Path(tmp))]


if __name__ == "__main__":
    for entry in run():
        print(entry)
