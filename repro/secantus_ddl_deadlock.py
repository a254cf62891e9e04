"""Standalone reproduction: SecantusDB hangs when collections are created while other
connections write to them.

Starts ``secantusd-py`` on a free port, then, round after round, creates a fresh
database: one connection creates its collections' indexes while many others upsert
into the same (not yet existing) collections. A watchdog pings the server on its own
connection; if a round does not finish within the deadline, the server is declared
hung, the script prints the server's pid (for ``py-spy dump --pid``) and exits 1.

Usage: python secantus_ddl_deadlock.py [--rounds 50] [--writers 16] [--deadline 30] [--precreate]

Without ``--precreate`` it usually hangs within a few rounds (SecantusDB 0.7.0b3): the
index-creating connection spins in a WiredTiger insert inside ``create_collection``
while holding the storage lock, and every writer waits for that lock in
``get_collection_options``. With ``--precreate`` (every collection and index made
before anyone writes to it, as Calib does) it runs all rounds.
Only needs ``SecantusDB`` and ``pymongo`` from PyPI.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymongo import ASCENDING, AsyncMongoClient, IndexModel

COLLECTIONS = ["frames", "jobs", "heartbeats", "rejections", "tokens"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def create_indexes(db) -> None:
    for name in COLLECTIONS:
        await db[name].create_indexes(
            [
                IndexModel([("a", ASCENDING), ("b", ASCENDING)], name="a_b"),
                IndexModel([("c", ASCENDING)], name="c", sparse=True),
            ]
        )


async def write(db, writer: int, count: int) -> None:
    for i in range(count):
        name = COLLECTIONS[(writer + i) % len(COLLECTIONS)]
        await db[name].update_one(
            {"_id": f"{writer}-{i % 4}"},
            {"$set": {"a": i, "b": writer}, "$inc": {"n": 1}},
            upsert=True,
        )


async def round_(client: AsyncMongoClient, number: int, writers: int, precreate: bool) -> None:
    db = client[f"repro_{number}"]
    if not precreate:
        # the trigger: index creation implicitly creates the collections that writers
        # are upserting into (and so implicitly creating) at the same moment
        await asyncio.gather(create_indexes(db), *(write(db, w, 20) for w in range(writers)))
        return
    # the avoidance: a database's collections are created before anyone writes to them;
    # writers keep writing to the previous round's database meanwhile
    previous = client[f"repro_{number - 1}"]
    await asyncio.gather(create_indexes(db), *(write(previous, w, 20) for w in range(writers)))
    await asyncio.gather(*(write(db, w, 20) for w in range(writers)))


async def run_rounds(uri: str, args: argparse.Namespace) -> int | None:
    """The round that hung, or None when every round finished."""
    client = AsyncMongoClient(uri, maxPoolSize=args.writers + 4)
    for _ in range(200):
        try:
            await client.admin.command("ping")
            break
        except Exception:  # noqa: BLE001 - not up yet
            await asyncio.sleep(0.1)
    for number in range(args.rounds):
        started = time.monotonic()
        try:
            await asyncio.wait_for(
                round_(client, number, args.writers, args.precreate), args.deadline
            )
        except TimeoutError:
            probe = AsyncMongoClient(uri, serverSelectionTimeoutMS=2000, socketTimeoutMS=5000)
            try:
                await probe.admin.command("ping")
                pinged = "answers ping"
            except Exception as error:  # noqa: BLE001
                pinged = f"no answer to ping ({type(error).__name__})"
            print(f"round {number}: HUNG after {args.deadline:.0f} s; server {pinged}", flush=True)
            return number
        print(f"round {number}: ok in {time.monotonic() - started:.2f} s", flush=True)
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument(
        "--precreate",
        action="store_true",
        help="create each database's collections before writing to them (no hang)",
    )
    args = parser.parse_args()

    storage = Path(tempfile.mkdtemp(prefix="secantus-repro-"))
    port = free_port()
    server_bin = Path(sys.executable).parent / "secantusd-py"
    server = subprocess.Popen(
        [
            str(server_bin if server_bin.exists() else "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
        ]
    )
    try:
        hung = asyncio.run(run_rounds(f"mongodb://127.0.0.1:{port}/?retryWrites=false", args))
        if hung is None:
            print("no hang in", args.rounds, "rounds")
            return 0
        if shutil.which("py-spy"):  # the server's threads: who holds the storage lock
            subprocess.run(["py-spy", "dump", "--pid", str(server.pid)], check=False)
        return 1
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
