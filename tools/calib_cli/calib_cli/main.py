"""The ``calib`` command line."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

import httpx
from nats.errors import Error as NatsError

from calib_app.access import new_token
from calib_infra.config import load_config
from calib_infra.natsauth import BusSecrets, deployment_environment


def _simulate(args: argparse.Namespace) -> None:
    from calib_cli.simulate import SimulationPlan, run_simulation
    from calib_stack.synthetic import Camera

    plan = SimulationPlan(
        observatory_id=args.observatory,
        camera=Camera(
            name=args.camera,
            width=args.width,
            height=args.height,
            gain=args.gain,
            offset=args.offset,
        ),
        bias=args.bias,
        darks=args.darks,
        flats=args.flats,
        lights=args.lights,
        dark_exposure_s=args.dark_exposure,
        flat_exposure_s=args.flat_exposure,
        light_exposure_s=args.light_exposure,
        temperature_c=args.temperature,
        filters=args.filters.split(","),
        seed=args.seed,
    )
    if not args.token:
        sys.exit("a plugin token is needed: --token or CALIB_PLUGIN_TOKEN")
    try:
        ids = run_simulation(
            plan, url=args.url, nats_url=args.nats, token=args.token, progress=not args.quiet
        )
    except httpx.HTTPStatusError as error:
        sys.exit(f"refused by the gateway: {error.response.status_code} {error.response.text}")
    except (httpx.HTTPError, NatsError, OSError) as error:
        sys.exit(f"simulation failed: {error}")
    print(f"published {len(ids)} frame.registered events for {args.observatory}")


def _watch(args: argparse.Namespace) -> None:
    from calib_cli.watch import Watcher

    if not args.token:
        sys.exit("a plugin token is needed: --token or CALIB_PLUGIN_TOKEN")
    if not args.folder.is_dir():
        sys.exit(f"not a folder: {args.folder}")
    watcher = Watcher(args.folder, observatory_id=args.observatory, token=args.token, url=args.url)
    try:
        watcher.run(once=args.once)
    except KeyboardInterrupt:
        pass
    finally:
        print(watcher.summary())


def deployment_secrets() -> dict[str, str]:
    """Fresh secrets for a deployment (``calib secrets > .env`` beside docker-compose.yml,
    or ``> deploy/k8s/secrets.env``): the bus's passwords and issuer key, the bucket's keys,
    the first admin token, and the password of Calib's database user (Kubernetes: the
    MongoDB operator makes the user and the URI from it)."""
    return {
        "CALIB_S3_ACCESS_KEY": "calib",
        "CALIB_S3_SECRET_KEY": secrets.token_urlsafe(32),
        "CALIB_BOOTSTRAP_ADMIN_TOKEN": new_token(),
        "CALIB_MONGODB_PASSWORD": secrets.token_urlsafe(24),
        **deployment_environment(BusSecrets.generate()),
    }


def _init_db() -> None:
    import asyncio

    from calib_infra.mongo import prepare_database

    config = load_config()
    asyncio.run(prepare_database(config))
    print(f"database {config.mongodb_db} ready")


def _admin_request(args: argparse.Namespace) -> tuple[str, str, dict | None]:
    """The (method, path, JSON body) of an ``admin`` subcommand."""
    admin = "/api/v1/admin"
    command = args.admin_command
    if command == "create-observatory":
        return "POST", f"{admin}/observatories", {"id": args.id, "name": args.name or args.id}
    if command == "list-observatories":
        return "GET", f"{admin}/observatories", None
    if command == "create-user":
        memberships = [{"observatory_id": o, "can_admin": True} for o in args.admin_of] + [
            {"observatory_id": o, "can_admin": False} for o in args.member_of
        ]
        return (
            "POST",
            f"{admin}/users",
            {"name": args.name, "server_admin": args.server_admin, "memberships": memberships},
        )
    if command == "list-users":
        return "GET", f"{admin}/users", None
    if command == "user-token":
        return "POST", f"{admin}/users/{args.user_id}/tokens", None
    if command == "plugin-token":
        return "POST", f"{admin}/observatories/{args.observatory}/plugin-tokens", None
    if command == "list-dead-letters":
        query = f"?status={args.status}" if args.status else ""
        return "GET", f"{admin}/dead-letters{query}", None
    if command == "replay-dead-letter":
        return "POST", f"{admin}/dead-letters/{args.dead_letter_id}/replay", None
    return "DELETE", f"{admin}/tokens/{args.token_id}", None


def _admin(args: argparse.Namespace) -> None:
    token = args.token or os.environ.get("CALIB_TOKEN") or load_config().bootstrap_admin_token
    if not token:
        sys.exit("an admin token is needed: --token or CALIB_TOKEN")
    method, path, body = _admin_request(args)
    try:
        response = httpx.request(
            method,
            args.url.rstrip("/") + path,
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as error:
        sys.exit(f"cannot reach the gateway at {args.url}: {error}")
    if response.status_code >= 400:
        sys.exit(f"error {response.status_code}: {response.text}")
    print(json.dumps(response.json(), indent=2) if response.content else "done")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="calib", description="Calib calibration library")
    commands = root.add_subparsers(dest="command", required=True)
    gateway_url = os.environ.get("CALIB_URL") or f"http://127.0.0.1:{load_config().gateway_port}"

    commands.add_parser("run", help="start the whole system with embedded servers")
    commands.add_parser(
        "secrets", help="print fresh secrets for a deployment, as a .env file for compose"
    )
    commands.add_parser(
        "init-db",
        help="create the database's collections and indexes (once, before the services start)",
    )

    sim = commands.add_parser(
        "simulate", help="act as a capture plugin: upload and announce frames"
    )
    sim.add_argument("--observatory", default="demo")
    sim.add_argument("--camera", default="ZWO ASI2600MM Pro")
    sim.add_argument("--width", type=int, default=640)
    sim.add_argument("--height", type=int, default=480)
    sim.add_argument("--gain", type=float, default=100)
    sim.add_argument("--offset", type=float, default=50)
    sim.add_argument("--bias", type=int, default=0)
    sim.add_argument("--darks", type=int, default=12)
    sim.add_argument("--flats", type=int, default=0)
    sim.add_argument("--lights", type=int, default=0)
    sim.add_argument("--dark-exposure", type=float, default=60.0)
    sim.add_argument("--flat-exposure", type=float, default=2.0)
    sim.add_argument("--light-exposure", type=float, default=60.0)
    sim.add_argument("--temperature", type=float, default=-10.0)
    sim.add_argument("--filters", default="L", help="comma-separated filter names")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--quiet", action="store_true")
    sim.add_argument(
        "--token",
        default=os.environ.get("CALIB_PLUGIN_TOKEN"),
        help="the observatory's plugin token",
    )
    sim.add_argument("--url", default=gateway_url, help="the gateway's base URL")
    sim.add_argument(
        "--nats",
        default=load_config().nats_url,
        help="the NATS server's URL (a cluster's: several, separated by commas)",
    )

    watch = commands.add_parser(
        "watch", help="upload every complete FITS/XISF file under a folder, as a plugin"
    )
    watch.add_argument("folder", type=Path)
    watch.add_argument("--observatory", required=True)
    watch.add_argument(
        "--token", default=os.environ.get("CALIB_PLUGIN_TOKEN"), help="the plugin token"
    )
    watch.add_argument("--url", default=gateway_url, help="the gateway's base URL")
    watch.add_argument(
        "--once", action="store_true", help="stop when nothing complete is left to send"
    )

    admin = commands.add_parser("admin", help="server administration over the HTTP API")
    admin.add_argument("--url", default=gateway_url)
    admin.add_argument("--token")
    sub = admin.add_subparsers(dest="admin_command", required=True)
    obs = sub.add_parser("create-observatory")
    obs.add_argument("id")
    obs.add_argument("--name")
    sub.add_parser("list-observatories")
    user = sub.add_parser("create-user")
    user.add_argument("name")
    user.add_argument("--server-admin", action="store_true")
    user.add_argument("--admin-of", action="append", default=[], metavar="OBSERVATORY")
    user.add_argument("--member-of", action="append", default=[], metavar="OBSERVATORY")
    sub.add_parser("list-users", help="users, memberships and live token ids")
    user_token = sub.add_parser("user-token", help="a new token for an existing user")
    user_token.add_argument("user_id")
    plugin = sub.add_parser("plugin-token")
    plugin.add_argument("observatory")
    revoke = sub.add_parser("revoke-token")
    revoke.add_argument("token_id")
    letters = sub.add_parser(
        "list-dead-letters", help="messages the services gave up on (SPEC §12), newest first"
    )
    letters.add_argument("--status", choices=["dead", "replayed", "retrying"])
    replay = sub.add_parser(
        "replay-dead-letter", help="publish a dead letter's message to the stream again"
    )
    replay.add_argument("dead_letter_id")
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "run":
        from calib_cli.stack import run

        run()
    elif args.command == "init-db":
        _init_db()
    elif args.command == "secrets":
        print("\n".join(f"{name}={value}" for name, value in deployment_secrets().items()))
    elif args.command == "simulate":
        _simulate(args)
    elif args.command == "watch":
        _watch(args)
    else:
        _admin(args)


if __name__ == "__main__":
    main()
