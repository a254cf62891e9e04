"""``calib simulate`` acts as an observatory's capture plugin with nothing but its plugin
token: presigned uploads, ``frame.registered`` over the authenticated bus."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.api_helpers import API
from tests.support.system import wait_for


def simulate(system, servers, *args: str, token: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALIB_")}
    command = [sys.executable, "-m", "calib_cli.main", "simulate", "--quiet"]
    command += ["--url", system.base_url, "--nats", servers.endpoints.nats_url]
    command += ["--token", token] if token else []
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=env)


def test_the_simulator_registers_frames_as_the_observatorys_plugin(
    system, servers, admin, observatory
):
    token = admin.post(f"/api/v1/admin/observatories/{observatory}/plugin-tokens").json()["token"]
    done = simulate(
        system,
        servers,
        "--observatory", observatory, "--darks", "3", "--width", "64", "--height", "48",
        token=token,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"published 3 frame.registered events for {observatory}" in done.stdout
    frames = wait_for(
        lambda: (
            (items := admin.get(f"{API}/library/{observatory}").json()["items"])
            and len(items) == 3
            and items
        ),
        timeout_s=30,
        what="the simulated frames to register",
    )
    assert {f["frame_type"] for f in frames} == {"dark"}
    assert all(f["storage_key"].startswith(f"frames/{observatory}/") for f in frames)


def test_the_simulator_needs_a_plugin_token_and_cannot_use_another_observatorys(
    system, servers, admin, observatory
):
    missing = simulate(system, servers, "--observatory", observatory, token=None)
    assert missing.returncode != 0
    assert "a plugin token is needed" in missing.stderr
    other = admin.post("/api/v1/admin/observatories", json={"id": observatory + "-b", "name": "B"})
    assert other.status_code == 201
    foreign = admin.post(f"/api/v1/admin/observatories/{observatory}-b/plugin-tokens")
    refused = simulate(
        system, servers, "--observatory", observatory, "--darks", "1", token=foreign.json()["token"]
    )
    assert refused.returncode != 0
    assert "refused by the gateway: 403" in refused.stderr
    assert "Traceback" not in refused.stderr
