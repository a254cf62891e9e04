"""``calib watch DIR`` as an observatory without the plugin uses it: files appear in the
capture folder (one written slowly), the watcher is stopped mid-session and restarted,
and every file is registered from exactly one upload; a refused file is listed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.api_helpers import API, frame_bytes
from tests.support.hostile import declared_image
from tests.support.plugin import Plugin
from tests.support.system import wait_for


def watch(system, folder: Path, observatory: str, token: str, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIB_")}
    command = [sys.executable, "-m", "calib_cli.main", "watch", str(folder)]
    command += ["--observatory", observatory, "--token", token, "--url", system.base_url]
    return subprocess.Popen(
        [*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def registered(admin, observatory: str) -> set[str]:
    items = admin.get(f"{API}/library/{observatory}", params={"limit": 100}).json()["items"]
    return {frame["sha256"] for frame in items}


def test_watch_uploads_each_complete_file_once_across_a_restart(
    system, admin, observatory, tmp_path
):
    token = admin.post(f"/api/v1/admin/observatories/{observatory}/plugin-tokens").json()["token"]
    folder = tmp_path / "captures"
    (folder / "2026-12-01").mkdir(parents=True)
    files = {name: frame_bytes("dark", index=i) for i, name in enumerate("abcd")}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    (folder / "2026-12-01" / "a.fits").write_bytes(files["a"])
    (folder / "b.FIT").write_bytes(files["b"])
    (folder / "notes.txt").write_text("not an image")

    first = watch(system, folder, observatory, token)
    try:
        # c is written in two halves, 4 s apart: longer than the watcher's settling time,
        # so only its header (it declares more bytes than are there yet) holds it back
        with (folder / "c.fits").open("wb") as slow:
            slow.write(files["c"][: len(files["c"]) // 2])
            slow.flush()
            time.sleep(4)
            slow.write(files["c"][len(files["c"]) // 2 :])
        wait_for(
            lambda: registered(admin, observatory) == {digests[n] for n in "abc"},
            timeout_s=60,
            what="a, b and c to register",
        )
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert "3 sent, 0 refused" in out

    (folder / "d.fits").write_bytes(files["d"])
    (folder / "e.fits").write_bytes(declared_image(NAXIS1=60000, NAXIS2=60000))
    second = watch(system, folder, observatory, token, "--once")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "4 sent, 1 refused" in out
    assert "refused e.fits: 422" in out and "image too large" in out

    wait_for(
        lambda: registered(admin, observatory) == set(digests.values()),
        timeout_s=60,
        what="d to register",
    )
    state = json.loads((folder / ".calib-watch.json").read_text())
    assert sorted(state["sent"]) == ["2026-12-01/a.fits", "b.FIT", "c.fits", "d.fits"]
    assert {entry["sha256"] for entry in state["sent"].values()} == set(digests.values())
    # one upload each: an object per file in the bucket, the refused one not stored
    stored = Plugin(system.config).store.list_sync(f"frames/{observatory}/")
    assert len(stored) == 4
