"""Library latency: p95 of ``GET /library/{obs}`` (filters, a page of 50) with 100,000
frames in one observatory, against the same query run directly on the database.

    uv run python bench/bench_library.py           # 100,000 frames, 200 requests
    CALIB_BENCH_QUICK=1 uv run python ...          # 10,000 frames, 60 requests (smoke test)

The records are bulk-inserted straight into MongoDB (registering 100,000 FITS files
through the pipeline would measure the registry, not the library). The servers are the
embedded ones of ``make run`` (``calib init-db``'s schema, bus authentication); the gateway
runs as its own process, as in production.

``run()`` returns entries ``{"name", "value", "unit", "reference", "ratio", "note"}``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pymongo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from calib_infra.repositories import library_query  # noqa: E402
from tests.support.system import (  # noqa: E402
    ADMIN_TOKEN,
    Services,
    service_config,
    start_servers,
)

QUICK = os.environ.get("CALIB_BENCH_QUICK") == "1"
FRAMES = 10_000 if QUICK else 100_000
REQUESTS = 60 if QUICK else 200
OBSERVATORY = "bench"
CAMERAS = ["ZWO ASI2600MM Pro", "ZWO ASI6200MM Pro", "QHY 268M"]
FILTERS = ["L", "R", "G", "B", "Ha", "OIII", "SII"]
TYPES = ["light"] * 6 + ["dark"] * 2 + ["flat"] * 2 + ["bias"]
#: The admin page's views: individual frames not yet in a master (per type, camera,
#: filter) and masters (per type and camera, or by status).
QUERIES = [
    {
        "is_master": "false",
        "exclude_mastered": "true",
        "frame_type": "flat",
        "camera_name": CAMERAS[0],
        "filter": "Ha",
    },
    {
        "is_master": "false",
        "exclude_mastered": "true",
        "frame_type": "dark",
        "camera_name": CAMERAS[1],
    },
    {"is_master": "false", "frame_type": "light", "camera_name": CAMERAS[2], "filter": "L"},
    {"is_master": "true", "frame_type": "dark", "camera_name": CAMERAS[0]},
    {"is_master": "true", "status": "active"},
]
PAGES = [1, 2, 5, 10]
LIMIT = 50


def _documents(count: int, now: datetime) -> list[dict]:
    rng = random.Random(1)
    documents = []
    for index in range(count):
        frame_type = rng.choice(TYPES)
        is_master = frame_type != "light" and rng.random() < 0.01
        camera = rng.choice(CAMERAS)
        document = {
            "_id": f"f{index:07d}",
            "observatory_id": OBSERVATORY,
            "frame_type": frame_type,
            "camera_name": camera,
            "exposure_s": rng.choice([1.0, 2.0, 60.0, 120.0, 300.0]),
            "width": 6248,
            "height": 4176,
            "gain": rng.choice([0.0, 100.0]),
            "offset": 50.0,
            "binning": "1x1",
            "readout_mode": None,
            "filter": rng.choice(FILTERS) if frame_type in ("flat", "light") else None,
            "temperature_c": -10.0 + rng.random(),
            "set_temperature_c": -10.0,
            "rotation_deg": None,
            "captured_at": now - timedelta(seconds=index * 50),
            "storage_key": f"frames/{OBSERVATORY}/{index}.fits",
            "size_bytes": 52_183_040,
            "sha256": f"{index:064x}",
            "registered_at": now - timedelta(seconds=index * 50 - 5),
            "is_master": is_master,
            "config_key": None,
            "master_id": f"m{index % 97}"
            if frame_type != "light" and not is_master and rng.random() < 0.7
            else None,
        }
        if is_master:
            document.update(
                status=rng.choice(["active", "superseded", "superseded", "expired"]),
                n_frames=20,
                method="sigma_clip",
                created_at=document["registered_at"],
            )
        documents.append(document)
    return documents


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def _filters(params: dict[str, str]) -> dict:
    """The database query the API builds for ``params``: its filters, then
    :func:`calib_infra.repositories.library_query` (camera and filter as substrings)."""
    filters: dict = {}
    contains: dict = {}
    for name, value in params.items():
        if name == "is_master":
            filters[name] = value == "true"
        elif name == "exclude_mastered":
            filters["master_id"] = None
        elif name in ("camera_name", "filter"):
            contains[name] = value
        else:
            filters[name] = value
    return library_query(OBSERVATORY, filters, contains)


def _measure(api, direct) -> tuple[list[float], list[float]]:
    """Time the same sampled queries through the API and on the database, interleaved so
    that background load on the machine hits both alike."""
    rng = random.Random(2)
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(REQUESTS):
        params, page = rng.choice(QUERIES), rng.choice(PAGES)
        for call, samples in ((api, timings[0]), (direct, timings[1])):
            start = time.perf_counter()
            call(params, page)
            samples.append((time.perf_counter() - start) * 1000)
    return timings


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="calib-bench-library-") as tmp:
        data = Path(tmp)
        servers = start_servers(data / "servers")
        services = None
        try:
            config = service_config(servers.endpoints, "bench", log_level="WARNING")
            services = Services(config=config, bus=servers.endpoints.bus, log_dir=data / "logs")
            services.create_schema()
            services.start("gateway")
            services.wait_ready()

            now = datetime.now(UTC)
            with pymongo.MongoClient(config.mongodb_uri, tz_aware=True) as mongo:
                db = mongo[config.mongodb_db]
                db["observatories"].insert_one(
                    {"_id": OBSERVATORY, "name": "Bench", "created_at": now}
                )
                documents = _documents(FRAMES, now)
                start = time.perf_counter()
                for offset in range(0, len(documents), 5000):
                    db["frames"].insert_many(documents[offset : offset + 5000], ordered=False)
                insert_s = time.perf_counter() - start
                frames = db["frames"]

                def direct(params: dict[str, str], page: int) -> None:
                    query = _filters(params)
                    frames.count_documents(query)
                    cursor = frames.find(query).sort([("registered_at", -1), ("_id", -1)])
                    list(cursor.skip((page - 1) * LIMIT).limit(LIMIT))

                with httpx.Client(
                    base_url=services.base_url,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=60,
                ) as client:

                    def api(params: dict[str, str], page: int) -> None:
                        response = client.get(
                            f"/api/v1/calibration/library/{OBSERVATORY}",
                            params={**params, "page": page, "limit": LIMIT},
                        )
                        assert response.status_code == 200, response.text

                    api(QUERIES[0], 1)  # warm both paths once
                    direct(QUERIES[0], 1)
                    api_ms, direct_ms = _measure(api, direct)
        finally:
            if services is not None:
                services.stop()
            servers.stop()
    value, reference = _p95(api_ms), _p95(direct_ms)
    return [
        {
            "name": "library_p95_ms",
            "value": round(value, 2),
            "unit": "ms",
            "reference": round(reference, 2),
            "ratio": round(value / reference, 3),
            "note": (
                f"{FRAMES} frames in one observatory (bulk insert {insert_s:.1f} s), "
                f"{REQUESTS} requests "
                f"over {len(QUERIES)} filter sets x pages {PAGES}, limit {LIMIT}; median API "
                f"{statistics.median(api_ms):.1f} ms vs database "
                f"{statistics.median(direct_ms):.1f} ms; "
                "reference = the same count + sorted page query straight on the database, "
                "interleaved"
            ),
        }
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
