"""A capture plugin's whole flow against Calib, with nothing but a plugin token (no bucket
credentials, no admin rights): README "Plugin flow", SPEC §8, §10, §12.

    python examples/plugin_upload.py --url http://127.0.0.1:8000 \\
        --nats nats://127.0.0.1:4222 --token "$PLUGIN_TOKEN" --observatory north \\
        dark_001.fits dark_002.fits

For each file:
  1. ``POST /api/v1/calibration/uploads`` ``{"observatory_id", "filename"}`` answers a key
     Calib chose under ``frames/<observatory>/`` and a presigned PUT URL (15 minutes);
  2. the file is PUT to that URL with plain HTTP (the URL is the only credential);
  3. ``frame.registered.<observatory>`` is published on NATS JetStream, naming the key,
     with the event id as ``Nats-Msg-Id`` (a repeat publish is dropped by the stream).
     The connection authenticates with the plugin token (``token=``) and uses the inbox
     prefix ``_INBOX_<observatory>``, the only one a plugin may receive replies on.
Then ``GET /api/v1/calibration/capture-plan/<observatory>`` tells what to capture next.

Needs only ``httpx`` and ``nats-py`` (``pip install httpx nats-py``). Prints one JSON
object per file (``file``, ``storage_key``, ``event_id``), then the capture plan.
Options default to ``CALIB_URL``, ``CALIB_NATS_URL``, ``CALIB_PLUGIN_TOKEN`` and
``CALIB_OBSERVATORY``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.errors import Error as NatsError

API = "/api/v1/calibration"


def ask_upload(client: httpx.Client, observatory_id: str, path: Path) -> dict[str, Any]:
    """Step 1: a key and a presigned PUT URL for ``path``."""
    response = client.post(
        f"{API}/uploads", json={"observatory_id": observatory_id, "filename": path.name}
    )
    response.raise_for_status()
    return response.json()


def put_file(upload_url: str, path: Path) -> None:
    """Step 2: the file itself, straight into the bucket (no Authorization header)."""
    with path.open("rb") as file:
        response = httpx.put(upload_url, content=file, timeout=httpx.Timeout(30, write=600))
    response.raise_for_status()


async def announce(
    nats_url: str, token: str, observatory_id: str, registrations: list[dict[str, Any]]
) -> None:
    """Step 3: ``frame.registered.<observatory>`` for each uploaded file, acknowledged by
    the stream."""
    connection = await nats.connect(
        nats_url.split(","),  # a cluster's URLs: any of them will do
        token=token,
        inbox_prefix=f"_INBOX_{observatory_id}",
        connect_timeout=5,
    )
    try:
        jetstream = connection.jetstream()
        for event in registrations:
            await jetstream.publish(
                f"frame.registered.{observatory_id}",
                json.dumps(event).encode(),
                headers={"Nats-Msg-Id": event["event_id"]},
            )
    finally:
        await connection.close()


def capture_plan(client: httpx.Client, observatory_id: str) -> dict[str, Any]:
    """What the observatory should capture next (``remaining`` frames per item)."""
    response = client.get(f"{API}/capture-plan/{observatory_id}")
    response.raise_for_status()
    return response.json()


def run(
    url: str, nats_url: str, token: str, observatory_id: str, files: list[Path]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The whole flow; returns the published events and the capture plan."""
    registrations = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for path in files:
            ticket = ask_upload(client, observatory_id, path)
            put_file(ticket["upload_url"], path)
            registrations.append(
                {
                    "event_id": uuid.uuid4().hex,
                    "observatory_id": observatory_id,
                    "storage_key": ticket["storage_key"],
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                }
            )
        asyncio.run(announce(nats_url, token, observatory_id, registrations))
        return registrations, capture_plan(client, observatory_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env = os.environ.get
    port = env("CALIB_GATEWAY_PORT", "8000")
    parser.add_argument("--url", default=env("CALIB_URL", f"http://127.0.0.1:{port}"))
    parser.add_argument("--nats", default=env("CALIB_NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--token", default=env("CALIB_PLUGIN_TOKEN"), help="a plugin token")
    parser.add_argument("--observatory", default=env("CALIB_OBSERVATORY"))
    parser.add_argument("files", nargs="+", type=Path, help="FITS files to upload")
    args = parser.parse_args(argv)
    if not args.token or not args.observatory:
        parser.error("--token and --observatory are required")
    try:
        registrations, plan = run(args.url, args.nats, args.token, args.observatory, args.files)
    except (httpx.HTTPError, NatsError, OSError) as error:
        detail = error.response.text if isinstance(error, httpx.HTTPStatusError) else error
        print(f"plugin upload failed: {detail}", file=sys.stderr)
        return 1
    for path, event in zip(args.files, registrations, strict=True):
        print(json.dumps({"file": str(path), **{k: event[k] for k in ("storage_key", "event_id")}}))
    print(json.dumps({"capture_plan": plan}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
