"""``calib run`` as a user runs it: a worker killed with SIGKILL and a frozen database
server are restarted while everything else keeps running; SIGTERM stops it all in
seconds, leaving no process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from calib_infra.metrics import SUPERVISOR_RESTARTS
from tests.support.system import ADMIN_TOKEN, free_port, wait_for


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def test_calib_run_restarts_what_dies_or_hangs_and_stops_cleanly(tmp_path):
    gateway_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIB_")}
    env.update(
        CALIB_DATA_DIR=str(tmp_path / "data"),
        CALIB_GATEWAY_PORT=str(gateway_port),
        CALIB_NATS_PORT=str(free_port()),
        CALIB_S3_PORT=str(free_port()),
        CALIB_MONGODB_PORT=str(free_port()),
        CALIB_BOOTSTRAP_ADMIN_TOKEN=ADMIN_TOKEN,
        CALIB_SIMULATE="0",
        CALIB_STACKER_REPLICAS="2",
        CALIB_LOG_FORMAT="json",
    )
    state_file = tmp_path / "data" / "supervisor.json"
    output = (tmp_path / "calib-run.log").open("w")
    run = subprocess.Popen(
        [sys.executable, "-m", "calib_cli.main", "run"], env=env, stdout=output, stderr=output
    )
    base = f"http://127.0.0.1:{gateway_port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def processes() -> dict:
        return json.loads(state_file.read_text())

    try:
        wait_for(ready, timeout_s=120, what="calib run to be ready")
        before = processes()
        assert set(before) == {
            "nats", "s3", "mongodb", "registry", "scheduler", "lifecycle", "gateway",
            "stacker-1", "stacker-2",
        }  # fmt: skip
        pids = {name: entry["pid"] for name, entry in before.items()}

        # a worker killed outright comes back; nothing else is touched
        os.kill(pids["stacker-1"], signal.SIGKILL)
        restarted = wait_for(
            lambda: (
                (p := processes())["stacker-1"]["restarts"] == 1
                and p["stacker-1"]["state"] == "running"
                and p
            ),
            timeout_s=30,
            what="stacker-1 to be restarted",
        )
        assert restarted["stacker-1"]["last_exit"] == -signal.SIGKILL
        assert restarted["stacker-1"]["pid"] != pids["stacker-1"]
        others = {n: e["pid"] for n, e in restarted.items() if n != "stacker-1"}
        assert others == {n: pid for n, pid in pids.items() if n != "stacker-1"}

        # a database server that stops answering (its port still open) is replaced
        os.kill(pids["mongodb"], signal.SIGSTOP)
        replaced = wait_for(
            lambda: (
                (p := processes())["mongodb"]["restarts"] == 1
                and p["mongodb"]["state"] == "running"
                and p
            ),
            timeout_s=60,
            what="the frozen database server to be replaced",
        )
        assert replaced["mongodb"]["last_exit"] == "unresponsive"
        assert not alive(pids["mongodb"])
        wait_for(ready, timeout_s=60, what="the services to reconnect")
        health = httpx.get(
            f"{base}/api/v1/calibration/health",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        ).json()
        assert health["processes"]["stacker-1"]["restarts"] == 1
        assert health["processes"]["mongodb"]["last_exit"] == "unresponsive"
        assert health["processes"]["gateway"]["restarts"] == 0
        # and as Prometheus counts them, on the gateway's /metrics (no token)
        restarts = {
            sample.labels["process"]: sample.value
            for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
            for sample in family.samples
            if sample.name == SUPERVISOR_RESTARTS
        }
        assert restarts["stacker-1"] == restarts["mongodb"] == 1 and restarts["gateway"] == 0

        every_pid = [run.pid, *(e["pid"] for e in processes().values())]
        started = time.monotonic()
        run.send_signal(signal.SIGTERM)
        run.wait(15)
        assert time.monotonic() - started < 10
        wait_for(
            lambda: not any(alive(pid) for pid in every_pid),
            timeout_s=2,
            what="every process to be gone",
        )
    finally:
        if run.poll() is None:
            run.kill()
        output.close()
