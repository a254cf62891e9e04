"""Chaos: ``calib run`` keeps its promises while its processes die under it.

Five observatories upload a stream of darks while random service processes of every kind
are killed with SIGKILL (several times), the NATS, S3 and MongoDB-wire servers are killed
mid-stream, and one server is frozen (SIGSTOP) until the supervisor replaces it. Then:
every accepted frame is registered exactly once, every group over the threshold has
exactly one active master made of its own frames, no job is left queued or running, no
object in the bucket lacks a record, and the supervisor's restart counts match the
faults. Seeded: the seed is printed, and ``CALIB_CHAOS_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import msgspec
import nats
from minio import Minio
from pymongo import MongoClient

from calib_core import events
from calib_core.busaccess import inbox_prefix
from calib_infra.eventloop import run_bounded
from tests.integration.registry_helpers import frame_bytes
from tests.support.system import ADMIN_TOKEN, free_port, wait_for

API = "/api/v1/calibration"
OBSERVATORIES = [f"chaos-{i}" for i in range(5)]
EXPOSURES = (30.0, 60.0)  # two groups per observatory
FRAMES_PER_GROUP = 12  # over the default threshold of 10
SERVICE_KILLS = ["registry", "stacker-1", "stacker-2", "lifecycle", "scheduler", "gateway"] * 2
SERVER_KILLS = ["nats", "s3", "mongodb"]
FROZEN = "nats"
S3_KEYS = ("chaos", "chaos-secret")


def seed() -> int:
    return int(os.environ.get("CALIB_CHAOS_SEED") or random.SystemRandom().randrange(10**6))


class CalibRun:
    """``calib run`` in a subprocess, on ports of its own."""

    def __init__(self, data: Path):
        self.data = data
        self.ports = {name: free_port() for name in ("gateway", "nats", "s3", "mongodb")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALIB_")}
        env.update(
            CALIB_DATA_DIR=str(data),
            CALIB_GATEWAY_PORT=str(self.ports["gateway"]),
            CALIB_NATS_PORT=str(self.ports["nats"]),
            CALIB_S3_PORT=str(self.ports["s3"]),
            CALIB_MONGODB_PORT=str(self.ports["mongodb"]),
            CALIB_S3_ACCESS_KEY=S3_KEYS[0],
            CALIB_S3_SECRET_KEY=S3_KEYS[1],
            CALIB_BOOTSTRAP_ADMIN_TOKEN=ADMIN_TOKEN,
            CALIB_SIMULATE="0",
            CALIB_LOG_FORMAT="json",
            CALIB_SWEEP_INTERVAL_S="5",
            CALIB_STACKER_ACK_WAIT_S="6",
        )
        self.output = (data.parent / "calib-run.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "calib_cli.main", "run"],
            env=env,
            stdout=self.output,
            stderr=self.output,
        )
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.ports['gateway']}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )

    def processes(self) -> dict:
        return json.loads((self.data / "supervisor.json").read_text())

    def ready(self) -> bool:
        try:
            return self.api.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.api.close()
        self.output.close()


class Plugin:
    """A capture plugin that keeps trying through outages: upload, then publish until
    JetStream acknowledges (the message id makes a repeat harmless)."""

    def __init__(self, run: CalibRun, tokens: dict[str, str]):
        self.tokens = tokens  # each observatory's plugin token: the bus admits it through
        # the gateway's auth callout, so plugins reconnect through gateway kills too
        self.bucket = "calib"
        self.s3 = Minio(f"127.0.0.1:{run.ports['s3']}", *S3_KEYS, secure=False)
        self.nats_url = f"nats://127.0.0.1:{run.ports['nats']}"
        self.accepted: dict[str, set[str]] = {o: set() for o in OBSERVATORIES}

    @staticmethod
    def retry(action, what: str, timeout_s: float = 90.0):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return action()
            except Exception:  # noqa: BLE001 - a server is down: try again
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what} kept failing") from None
                time.sleep(0.5)

    async def publish_all(self, frames: list[tuple[str, bytes]]) -> None:
        connections = {
            observatory: await nats.connect(
                self.nats_url,
                token=token,
                inbox_prefix=inbox_prefix(observatory),
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            )
            for observatory, token in self.tokens.items()
        }
        try:
            for observatory, data in frames:
                stream = connections[observatory].jetstream(timeout=3)
                key = f"frames/{observatory}/{uuid.uuid4().hex}.fits"
                await asyncio.to_thread(self.retry, lambda k=key, d=data: self._put(k, d), "S3")
                sha256 = hashlib.sha256(data).hexdigest()
                event = events.FrameRegistered(
                    event_id=uuid.uuid4().hex,
                    observatory_id=observatory,
                    storage_key=key,
                    sha256=sha256,
                )
                body = msgspec.json.encode(event)
                deadline = time.monotonic() + 90
                while True:
                    try:
                        await stream.publish(
                            events.subject(events.FRAME_REGISTERED, observatory),
                            body,
                            headers={"Nats-Msg-Id": event.event_id},
                        )
                        break
                    except Exception:  # noqa: BLE001 - NATS restarting: publish again
                        assert time.monotonic() < deadline, "publishing kept failing"
                        await asyncio.sleep(0.5)
                self.accepted[observatory].add(sha256)
                await asyncio.sleep(0.05)
        finally:
            for connection in connections.values():
                await connection.close()

    def _put(self, key: str, data: bytes) -> None:
        self.s3.put_object(self.bucket, key, io.BytesIO(data), len(data))


def chaos(run: CalibRun, rng: random.Random, done: threading.Event, faults: Counter) -> None:
    """Kill a random process every few seconds until every planned fault has happened."""
    plan = SERVICE_KILLS + SERVER_KILLS
    rng.shuffle(plan)
    plan.insert(rng.randrange(len(plan)), f"freeze:{FROZEN}")
    for fault in plan:
        time.sleep(rng.uniform(2.0, 4.0))
        name = fault.removeprefix("freeze:")
        entry = wait_for(
            lambda n=name: (e := run.processes()[n])["state"] == "running" and e["pid"] and e,
            timeout_s=90,
            what=f"{name} to be running before the next fault",
        )
        frozen = fault.startswith("freeze:")
        os.kill(entry["pid"], signal.SIGSTOP if frozen else signal.SIGKILL)
        faults[name] += 1
        if frozen:  # the supervisor must find it unresponsive and replace it (~20 s)
            wait_for(
                lambda n=name, before=entry["restarts"]: run.processes()[n]["restarts"] > before,
                timeout_s=90,
                what=f"the frozen {name} to be replaced",
            )
    done.set()


def test_calib_run_keeps_every_promise_while_processes_die(tmp_path):
    chosen = seed()
    print(f"chaos seed {chosen} (replay with CALIB_CHAOS_SEED={chosen})")
    rng = random.Random(chosen)
    run = CalibRun(tmp_path / "data")
    try:
        wait_for(run.ready, timeout_s=120, what="calib run to be ready")
        tokens = {}
        for observatory in OBSERVATORIES:
            assert (
                run.api.post(
                    "/api/v1/admin/observatories", json={"id": observatory, "name": observatory}
                ).status_code
                == 201
            )
            issued = run.api.post(f"/api/v1/admin/observatories/{observatory}/plugin-tokens")
            tokens[observatory] = issued.json()["token"]
        frames = [
            (observatory, frame_bytes("dark", index, exposure_s=exposure))
            for index in range(FRAMES_PER_GROUP)
            for observatory in OBSERVATORIES
            for exposure in EXPOSURES
        ]
        rng.shuffle(frames)
        plugin = Plugin(run, tokens)
        faults: Counter = Counter()
        done = threading.Event()
        monkey = threading.Thread(target=chaos, args=(run, rng, done, faults))
        monkey.start()
        run_bounded(plugin.publish_all(frames))
        monkey.join(timeout=300)
        assert done.is_set(), "the fault plan did not finish"

        wait_for(run.ready, timeout_s=120, what="calib run to be whole again")
        settled = wait_for(
            lambda: settled_library(run), timeout_s=240, interval_s=2, what="the library to settle"
        )
        check_library(run, plugin, settled)
        check_bucket(run)

        restarts = {name: entry["restarts"] for name, entry in run.processes().items()}
        print(f"faults {dict(faults)}; restarts {restarts}")
        assert restarts == {name: faults.get(name, 0) for name in restarts}, (restarts, faults)
        assert run.processes()[FROZEN]["last_exit"] in ("unresponsive", -signal.SIGKILL)
    finally:
        run.stop()


def settled_library(run: CalibRun) -> dict | None:
    """Each observatory's frames and masters, once no job is queued or running and every
    group has its master."""
    library = {}
    try:
        for observatory in OBSERVATORIES:
            jobs = run.api.get(f"{API}/jobs/{observatory}").json()["items"]
            if any(job["status"] in ("queued", "running") for job in jobs):
                return None
            items = run.api.get(f"{API}/library/{observatory}", params={"limit": 500}).json()
            masters = [f for f in items["items"] if f["is_master"] and f["status"] == "active"]
            if len(masters) < len(EXPOSURES):
                return None
            library[observatory] = (items["items"], jobs)
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    return library


def check_library(run: CalibRun, plugin: Plugin, library: dict) -> None:
    for observatory, (items, jobs) in library.items():
        frames = [f for f in items if not f["is_master"]]
        hashes = Counter(f["sha256"] for f in frames)
        assert set(hashes) == plugin.accepted[observatory], observatory  # every one, once
        assert max(hashes.values()) == 1, observatory
        masters = [f for f in items if f["is_master"] and f["status"] == "active"]
        by_exposure = Counter(round(m["exposure_s"]) for m in masters)
        assert by_exposure == {round(e): 1 for e in EXPOSURES}, (observatory, by_exposure)
        for master in masters:
            components = run.api.get(f"{API}/frames/{master['id']}/components").json()["items"]
            assert len(components) >= 10
            assert {round(c["exposure_s"]) for c in components} == {round(master["exposure_s"])}
            assert len({c["id"] for c in components}) == len(components)
        assert not [j for j in jobs if j["status"] == "running"]
        made = Counter(j["master_id"] for j in jobs if j.get("master_id"))
        assert all(count == 1 for count in made.values()), made  # no duplicate master


def check_bucket(run: CalibRun) -> None:
    """Every object is named by a record: no orphan left by a killed process."""
    uri = f"mongodb://127.0.0.1:{run.ports['mongodb']}/?retryWrites=false"
    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        named = set()
        for record in client["calib"]["frames"].find({}, {"storage_key": 1, "preview_key": 1}):
            named |= {record.get("storage_key"), record.get("preview_key")}
    s3 = Minio(f"127.0.0.1:{run.ports['s3']}", *S3_KEYS, secure=False)
    stored = {o.object_name for o in s3.list_objects("calib", recursive=True)}
    assert stored <= named, sorted(stored - named)[:5]
