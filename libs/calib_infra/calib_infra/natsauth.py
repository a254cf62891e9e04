"""Authentication on the bus (SPEC §10, §12), NATS side.

The server runs in config mode with two accounts: ``CALIB`` (the stream, every service
and every plugin) and ``SYS`` (the system account). Services and tools log in with a
password of their own. Any other connection goes to the *auth callout*: the server asks
``$SYS.REQ.USER.AUTH`` and the gateway answers, admitting a live plugin token as a user
with its observatory's permissions (signed by the issuer key). A revoked token's live
connections are closed by the gateway's sweep through the system account (``CONNZ``,
``KICK``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import nats
import nkeys
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from calib_app.bus_access import BusConnection, PluginGrant, revoked_connections
from calib_app.ports import AccountRepository, Log
from calib_core.busaccess import PASSWORD_USERS, SYSTEM_USER
from calib_infra import natsjwt
from calib_infra.retry import until_it_works

ACCOUNT = "CALIB"
SYSTEM_ACCOUNT = "SYS"
CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
#: replicas of the gateway answer callouts as one queue group
CALLOUT_QUEUE = "calib-auth"
#: only the gateway may read authorization requests (they carry plugin tokens)
CALLOUT_READER = "gateway"
#: how often live connections are checked against revoked tokens (SPEC §12: within 10 s)
REVOCATION_SWEEP_S = 3.0


class BusSecrets(msgspec.Struct, frozen=True, kw_only=True):
    """The bus's secrets: a password per user and the seed of the key that signs plugin
    users (an account nkey)."""

    passwords: dict[str, str]
    issuer_seed: str

    @classmethod
    def generate(cls) -> BusSecrets:
        return cls(
            passwords={user: secrets.token_urlsafe(24) for user in PASSWORD_USERS},
            issuer_seed=nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode(),
        )

    @property
    def issuer_public_key(self) -> str:
        return issuer(self.issuer_seed).public_key.decode()

    def identity(self, user: str) -> dict[str, str]:
        """The configuration (``Config`` fields) of a process connecting as ``user``."""
        fields = {"nats_user": user, "nats_password": self.passwords[user]}
        if user == CALLOUT_READER:
            fields["nats_issuer_seed"] = self.issuer_seed
            fields["nats_system_password"] = self.passwords[SYSTEM_USER]
        return fields

    def environment(self, user: str) -> dict[str, str]:
        """The same as ``CALIB_*`` environment variables."""
        return {f"CALIB_{name.upper()}": value for name, value in self.identity(user).items()}


def compose_variable(user: str) -> str:
    """The environment variable holding ``user``'s password in a deployment."""
    return f"CALIB_NATS_{user.upper()}_PASSWORD"


#: the issuer's public key, in a deployment's environment (the seed is the gateway's
#: ``CALIB_NATS_ISSUER_SEED``)
ISSUER_VARIABLE = "CALIB_NATS_ISSUER"


def deployment_config() -> str:
    """The server configuration for containers: secrets come from the environment."""
    return server_config(
        _deployment_passwords(),
        "$" + ISSUER_VARIABLE,
        listen="0.0.0.0:4222",
        monitor="0.0.0.0:8222",
        store_dir="/data",
    )


def deployment_auth_config() -> str:
    """:func:`auth_config` for a deployment whose servers a chart configures (Kubernetes:
    deploy/k8s/charts/nats-values.yaml includes it); secrets from the environment."""
    return auth_config(_deployment_passwords(), "$" + ISSUER_VARIABLE)


def _deployment_passwords() -> dict[str, str]:
    return {user: "$" + compose_variable(user) for user in PASSWORD_USERS}


def deployment_environment(secrets: BusSecrets) -> dict[str, str]:
    """The variables a deployment needs (``calib secrets`` writes them to ``.env``)."""
    variables = {compose_variable(user): secrets.passwords[user] for user in PASSWORD_USERS}
    variables[ISSUER_VARIABLE] = secrets.issuer_public_key
    variables["CALIB_NATS_ISSUER_SEED"] = secrets.issuer_seed
    return variables


def issuer(seed: str) -> nkeys.KeyPair:
    return nkeys.from_seed(seed.encode())


def load_or_create_secrets(path: Path) -> BusSecrets:
    """The secrets kept in ``path`` (made, readable by this user only, on first use)."""
    if path.exists():
        return msgspec.json.decode(path.read_bytes(), type=BusSecrets)
    created = BusSecrets.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(msgspec.json.encode(created))
    return created


def _value(text: str) -> str:
    """A configuration value: quoted, unless it is a ``$VARIABLE`` the server resolves
    from its environment (how the compose file passes secrets in)."""
    return text if text.startswith("$") else json.dumps(text)


#: the user routes between the nodes of a cluster log in as (with the cluster's password)
ROUTE_USER = "route"


class ClusterNode(msgspec.Struct, frozen=True, kw_only=True):
    """A server's place in a NATS cluster: its name (JetStream's raft groups know it by
    it), where it listens for routes, every node's route address (its own included: a
    server ignores a route to itself), and the password routes log in with."""

    cluster_name: str
    server_name: str
    listen: str
    routes: tuple[str, ...]
    password: str

    def config(self) -> str:
        credentials = f"{ROUTE_USER}:{urllib.parse.quote(self.password, safe='')}"
        routes = "\n".join(
            f"    {json.dumps(f'nats-route://{credentials}@{route}')}" for route in self.routes
        )
        return f"""server_name: {json.dumps(self.server_name)}
cluster {{
  name: {json.dumps(self.cluster_name)}
  listen: {self.listen}
  authorization {{
    user: {json.dumps(ROUTE_USER)}
    password: {json.dumps(self.password)}
  }}
  routes: [
{routes}
  ]
}}
"""


def server_config(
    passwords: dict[str, str],
    issuer_public_key: str,
    *,
    listen: str,
    monitor: str,
    store_dir: str,
    max_payload_bytes: int = 1 << 20,
    cluster: ClusterNode | None = None,
) -> str:
    """The nats-server configuration: authentication on, nothing anonymous. A node of a
    cluster has the same accounts, users and auth callout as a lone server, and its own
    JetStream store: a plugin is admitted whichever node it (and the gateway) reach."""
    return f"""# Calib's NATS server: no anonymous connection; see calib_infra/natsauth.py
listen: {listen}
http: {monitor}
max_payload: {max_payload_bytes}
jetstream {{
  store_dir: {json.dumps(store_dir)}
}}
{auth_config(passwords, issuer_public_key)}""" + (cluster.config() if cluster else "")


def auth_config(passwords: dict[str, str], issuer_public_key: str) -> str:
    """The accounts, their users and the auth callout: the part of the server's
    configuration that is Calib's whoever runs the server (a chart includes it)."""

    def user(name: str) -> str:
        line = f"{{user: {json.dumps(name)}, password: {_value(passwords[name])}"
        if name not in (CALLOUT_READER, SYSTEM_USER):
            line += ', permissions: {subscribe: {deny: ["$SYS.>"]}}'  # no authorization requests
        return line + "}"

    services = "\n".join(f"      {user(name)}" for name in PASSWORD_USERS if name != SYSTEM_USER)
    auth_users = ", ".join(json.dumps(name) for name in PASSWORD_USERS)
    return f"""accounts {{
  {ACCOUNT} {{
    jetstream: enabled
    users: [
{services}
    ]
  }}
  {SYSTEM_ACCOUNT} {{
    users: [
      {user(SYSTEM_USER)}
    ]
  }}
}}
system_account: {SYSTEM_ACCOUNT}
authorization {{
  auth_callout {{
    issuer: {_value(issuer_public_key)}
    account: {ACCOUNT}
    auth_users: [{auth_users}]
  }}
}}
"""


Admit = Callable[[str], Awaitable[PluginGrant | str]]


async def answer_callouts(
    connection: NatsConnection, signer: nkeys.KeyPair, admit: Admit, log: Log
) -> None:
    """Answer the server's authorization requests on ``connection`` (the gateway's):
    a live plugin token is admitted with its permissions; anything else is refused with
    the reason. A request that is not the server's is ignored."""

    async def on_request(msg: Msg) -> None:
        try:
            request = natsjwt.decode(msg.data, natsjwt.AUTHORIZATION_REQUEST)
            user_nkey = request["nats"]["user_nkey"]
            token = request["nats"].get("connect_opts", {}).get("auth_token", "")
        except (natsjwt.InvalidJwt, KeyError, TypeError) as error:
            log.warning("authorization request ignored", error=str(error))
            return
        try:
            grant = await admit(token)
        except Exception as error:  # noqa: BLE001 - the database away: refuse, plugin retries
            log.warning("authorization unavailable", error=str(error))
            grant = "authorization unavailable, try again"
        if isinstance(grant, str):
            log.info("bus connection refused", reason=grant, host=_client_host(request))
            response = natsjwt.authorization_response(request, signer, error=grant)
        else:
            user = natsjwt.user_claims(
                user_nkey, account=ACCOUNT, name=grant.user, permissions=grant.permissions
            )
            user_jwt = natsjwt.encode(user, signer, natsjwt.USER)
            response = natsjwt.authorization_response(request, signer, user_jwt=user_jwt)
        with contextlib.suppress(Exception):  # the server gave up waiting: nothing to do
            await msg.respond(response.encode())

    await connection.subscribe(CALLOUT_SUBJECT, queue=CALLOUT_QUEUE, cb=on_request)


def _client_host(request: dict[str, Any]) -> str:
    return str(request["nats"].get("client_info", {}).get("host", ""))


async def system_connection(url: str | Sequence[str], password: str) -> NatsConnection:
    """A connection in the system account (to list and close connections)."""
    return await nats.connect(
        url,
        user=SYSTEM_USER,
        password=password,
        name="calib-gateway-system",
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
    )


async def connections(
    system: NatsConnection, *, quiet_s: float = 0.25, timeout_s: float = 2.0
) -> list[BusConnection]:
    """Every open client connection of the ``CALIB`` account on every server (each
    server of a cluster answers; the answers are gathered until they stop coming)."""
    inbox = system.new_inbox()
    answers: asyncio.Queue[Msg] = asyncio.Queue()
    subscription = await system.subscribe(inbox, cb=answers.put)
    request = {"auth": True, "limit": 100_000, "acc": ACCOUNT}
    found: list[BusConnection] = []
    try:
        await system.publish("$SYS.REQ.SERVER.PING.CONNZ", json.dumps(request).encode(), inbox)
        wait = timeout_s
        while True:
            try:
                answer = await asyncio.wait_for(answers.get(), wait)
            except TimeoutError:
                return found
            wait = quiet_s
            body = json.loads(answer.data)
            server_id = body.get("server", {}).get("id", "")
            for connection in (body.get("data") or {}).get("connections") or []:
                found.append(
                    BusConnection(
                        server_id=server_id,
                        connection_id=int(connection["cid"]),
                        user=str(connection.get("authorized_user", "")),
                    )
                )
    finally:
        await subscription.unsubscribe()


async def close_connection(system: NatsConnection, connection: BusConnection) -> None:
    body = json.dumps({"cid": connection.connection_id}).encode()
    await system.request(f"$SYS.REQ.SERVER.{connection.server_id}.KICK", body, timeout=2.0)


async def close_revoked_forever(
    url: str | Sequence[str], system_password: str, accounts: AccountRepository, log: Log
) -> None:
    """Every few seconds, close the live connections of plugin tokens revoked since they
    connected (from any gateway replica, the command line, or the database itself); the
    callout refuses their reconnection."""
    system = await until_it_works(
        lambda: system_connection(url, system_password), log, "nats system account"
    )
    try:
        while True:
            try:
                for connection in await revoked_connections(accounts, await connections(system)):
                    await close_connection(system, connection)
                    log.info("revoked plugin disconnected", user=connection.user)
            except Exception as error:  # noqa: BLE001 - NATS or the database away: next round
                log.warning("revocation sweep failed", error=str(error))
            await asyncio.sleep(REVOCATION_SWEEP_S)
    finally:
        await system.close()
