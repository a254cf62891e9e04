"""``calib admin ...`` against the running system: the command line does what the
admin endpoints do."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.integration.api_helpers import API
from tests.support.system import ADMIN_TOKEN, unique


def calib(system, *args: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "calib_cli.main",
            "admin",
            "--url",
            system.base_url,
            "--token",
            token,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def output(done: subprocess.CompletedProcess):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status(system, token: str, observatory_id: str) -> int:
    response = httpx.get(
        f"{system.base_url}{API}/library/{observatory_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code


def test_observatories_users_tokens_and_revocation_from_the_command_line(system):
    observatory = unique("cli")
    created = output(calib(system, "create-observatory", observatory, "--name", "North dome"))
    assert created["id"] == observatory and created["name"] == "North dome"
    listed = output(calib(system, "list-observatories"))["items"]
    assert observatory in {o["id"] for o in listed}

    user = output(calib(system, "create-user", "alice", "--admin-of", observatory))
    assert status(system, user["token"], observatory) == 200
    users = {u["id"]: u for u in output(calib(system, "list-users"))["items"]}
    assert users[user["id"]]["memberships"] == [{"observatory_id": observatory, "can_admin": True}]

    assert calib(system, "revoke-token", user["token_id"]).stdout.strip() == "done"
    assert status(system, user["token"], observatory) == 401
    fresh = output(calib(system, "user-token", user["id"]))
    assert status(system, fresh["token"], observatory) == 200

    plugin = output(calib(system, "plugin-token", observatory))
    assert plugin["observatory_id"] == observatory
    plan = httpx.get(
        f"{system.base_url}{API}/capture-plan/{observatory}",
        headers={"Authorization": f"Bearer {plugin['token']}"},
    )
    assert plan.status_code == 200 and plan.json()["items"] == []


def test_errors_are_reported_with_a_nonzero_exit(system):
    duplicate = unique("cli")
    output(calib(system, "create-observatory", duplicate))
    again = calib(system, "create-observatory", duplicate)
    assert again.returncode != 0 and "409" in again.stderr
    forged = calib(system, "list-users", token="calib_forged")
    assert forged.returncode != 0 and "401" in forged.stderr
    viewer = output(calib(system, "create-user", "bob", "--member-of", duplicate))
    refused = calib(system, "list-users", token=viewer["token"])
    assert refused.returncode != 0 and "403" in refused.stderr
