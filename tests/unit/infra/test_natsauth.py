"""The bus's authentication pieces without a server: JWTs as the NATS server reads and
writes them, its configuration, the secrets, and production mode."""

from __future__ import annotations

import base64
import json

import msgspec
import nkeys
import pytest

from calib_core.busaccess import PASSWORD_USERS, plugin_permissions
from calib_infra import natsjwt
from calib_infra.config import Config
from calib_infra.natsauth import (
    ROUTE_USER,
    BusSecrets,
    ClusterNode,
    deployment_environment,
    issuer,
    load_or_create_secrets,
    server_config,
)
from calib_infra.runtime import refuse_unsafe_production


def server_key() -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_SERVER))


def payload(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_a_signed_jwt_decodes_only_as_its_type_and_only_untampered():
    token = natsjwt.encode({"sub": "U123", "nats": {}}, server_key(), natsjwt.AUTHORIZATION_REQUEST)
    claims = natsjwt.decode(token, natsjwt.AUTHORIZATION_REQUEST)
    assert claims["iss"] == server_key().public_key.decode()
    assert claims["nats"] == {"type": "authorization_request", "version": 2}
    with pytest.raises(natsjwt.InvalidJwt):
        natsjwt.decode(token, natsjwt.USER)
    header, body, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "U999"}).encode()).rstrip(b"=")
    with pytest.raises(natsjwt.InvalidJwt):
        natsjwt.decode(f"{header}.{forged.decode()}.{signature}", natsjwt.AUTHORIZATION_REQUEST)
    with pytest.raises(natsjwt.InvalidJwt):
        natsjwt.decode("not-a-jwt", natsjwt.AUTHORIZATION_REQUEST)


def test_the_response_admits_the_requested_user_for_the_asking_server():
    secrets = BusSecrets.generate()
    signer = issuer(secrets.issuer_seed)
    request = {"nats": {"user_nkey": "UABC", "server_id": {"id": "NSERVER"}}}
    user = natsjwt.encode(
        natsjwt.user_claims(
            "UABC", account="CALIB", name="plugin:t1", permissions=plugin_permissions("o")
        ),
        signer,
        natsjwt.USER,
    )
    response = natsjwt.decode(
        natsjwt.authorization_response(request, signer, user_jwt=user),
        natsjwt.AUTHORIZATION_RESPONSE,
    )
    assert (response["sub"], response["aud"]) == ("UABC", "NSERVER")
    assert response["iss"] == secrets.issuer_public_key
    admitted = natsjwt.decode(response["nats"]["jwt"], natsjwt.USER)
    assert admitted["aud"] == "CALIB" and admitted["name"] == "plugin:t1"
    assert admitted["nats"]["pub"] == {"allow": ["frame.registered.o"]}
    refused = payload(natsjwt.authorization_response(request, signer, error="revoked"))
    assert refused["nats"] == {"error": "revoked", "type": "authorization_response", "version": 2}


def test_the_server_configuration_has_a_password_for_every_user_and_no_anonymous_way_in():
    secrets = BusSecrets.generate()
    text = server_config(
        secrets.passwords, secrets.issuer_public_key, listen="a:1", monitor="a:2", store_dir="/d"
    )
    for user in PASSWORD_USERS:
        assert f'{{user: "{user}", password: "{secrets.passwords[user]}"' in text
    assert f'issuer: "{secrets.issuer_public_key}"' in text
    assert "no_auth_user" not in text
    assert text.count('deny: ["$SYS.>"]') == len(PASSWORD_USERS) - 2  # not gateway, system


def test_a_cluster_node_has_the_lone_servers_accounts_and_routes_that_log_in():
    secrets = BusSecrets.generate()
    options = dict(listen="a:1", monitor="a:2", store_dir="/d")
    lone = server_config(secrets.passwords, secrets.issuer_public_key, **options)
    node = ClusterNode(
        cluster_name="calib",
        server_name="nats-2",
        listen="b:6222",
        routes=("a:6222", "b:6222", "c:6222"),
        password="p/w",
    )
    text = server_config(secrets.passwords, secrets.issuer_public_key, **options, cluster=node)
    assert text.startswith(lone)  # the same accounts, users and auth callout on every node
    added = text.removeprefix(lone)
    assert 'server_name: "nats-2"' in added
    assert f'user: "{ROUTE_USER}"\n    password: "p/w"' in added
    for host in "abc":
        assert f'"nats-route://{ROUTE_USER}:p%2Fw@{host}:6222"' in added


def test_only_the_gateway_holds_the_issuer_key_and_the_system_password():
    secrets = BusSecrets.generate()
    assert secrets.identity("registry") == {
        "nats_user": "registry",
        "nats_password": secrets.passwords["registry"],
    }
    gateway = secrets.identity("gateway")
    assert gateway["nats_issuer_seed"] == secrets.issuer_seed
    assert gateway["nats_system_password"] == secrets.passwords["system"]
    assert secrets.environment("stacker")["CALIB_NATS_USER"] == "stacker"
    assert deployment_environment(secrets)["CALIB_NATS_ISSUER"] == secrets.issuer_public_key


def test_secrets_are_made_once_readable_by_their_owner_only(tmp_path):
    path = tmp_path / "data" / "secrets.json"
    first = load_or_create_secrets(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secrets(path) == first
    assert msgspec.json.decode(path.read_bytes(), type=BusSecrets) == first
    assert BusSecrets.generate() != first


def test_production_mode_refuses_a_known_default_secret_or_no_bus_credentials():
    with pytest.raises(SystemExit, match="CALIB_S3_SECRET_KEY is the development default"):
        refuse_unsafe_production(Config(mode="production", nats_user="r", nats_password="p"))
    with pytest.raises(SystemExit, match="no bus credentials"):
        refuse_unsafe_production(Config(mode="production", s3_secret_key="s3cret"))
    refuse_unsafe_production(Config(mode="development"))  # development keeps its defaults
    safe = Config(mode="production", s3_secret_key="s3cret", nats_user="r", nats_password="p")
    assert safe.unsafe_secrets() == []
