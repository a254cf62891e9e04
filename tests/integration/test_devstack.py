"""The embedded servers never outlive the process that started them, however it dies
and whatever state they are in: a test session killed outright (a CI timeout, say)
leaves no server behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import psutil

from tests.support.system import wait_for

STARTER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tests.support.system import start_servers

    servers = start_servers(Path(sys.argv[1]))
    print(json.dumps([p.process.pid for p in servers.processes.values()]), flush=True)
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_servers_die_with_a_parent_killed_outright(tmp_path):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        pids = json.loads(starter.stdout.readline())
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
        os.kill(pids[-1], signal.SIGSTOP)  # a hung server, deaf to SIGTERM, must go too
        os.kill(starter.pid, signal.SIGKILL)  # no cleanup code of the parent runs
        starter.wait()
        wait_for(
            lambda: not any(alive(pid) for pid in pids),
            timeout_s=10,
            what="the servers to die with their parent",
        )
    finally:
        starter.kill()
