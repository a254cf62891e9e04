"""NATS JWTs (the ``ed25519-nkey`` flavour of nats-io/jwt v2), just what the auth callout
needs: read the server's authorization request, write the signed user claims and the
authorization response. The claims are small JSON documents; signing is ``nkeys``'."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
#: the claim types (``nats.type``) the server expects
USER = "user"
AUTHORIZATION_RESPONSE = "authorization_response"
AUTHORIZATION_REQUEST = "authorization_request"


class InvalidJwt(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def encode(claims: dict[str, Any], signer: nkeys.KeyPair, claim_type: str) -> str:
    """A signed JWT of ``claims`` (``sub``, ``aud``, ``name``, ``exp`` … and ``nats``),
    issued now by ``signer``."""
    body = dict(claims)
    body["iss"] = signer.public_key.decode()
    body["iat"] = int(time.time())
    body.pop("jti", None)
    # like nats-io/jwt: the id is a hash of the standard claims
    standard = {k: body[k] for k in ("aud", "exp", "iat", "iss", "name", "nbf", "sub") if k in body}
    digest = hashlib.new("sha512_256", _json(standard)).digest()
    body["jti"] = base64.b32encode(digest).decode().rstrip("=")
    body["nats"] = {**body.get("nats", {}), "type": claim_type, "version": 2}
    signing_input = f"{_b64(_json(HEADER))}.{_b64(_json(body))}"
    signature = signer.sign(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def verify_key(public_key: str) -> nacl.signing.VerifyKey:
    """The ed25519 key of an nkey public key (base32 of prefix, key and CRC-16)."""
    raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    if len(raw) != 35 or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        raise ValueError(f"not an nkey public key: {public_key[:60]!r}")
    return nacl.signing.VerifyKey(raw[1:-2])


def decode(token: str | bytes, claim_type: str) -> dict[str, Any]:
    """The claims of a JWT of ``claim_type``, its signature checked against its issuer."""
    text = token.decode() if isinstance(token, bytes) else token
    try:
        header, body, signature = text.strip().split(".")
        claims = json.loads(_unb64(body))
        verify_key(claims["iss"]).verify(f"{header}.{body}".encode(), _unb64(signature))
    except (ValueError, KeyError, TypeError, nacl.exceptions.CryptoError) as error:
        raise InvalidJwt(f"not a valid JWT: {error}") from error
    if not isinstance(claims.get("nats"), dict) or claims["nats"].get("type") != claim_type:
        raise InvalidJwt(f"not an {claim_type} JWT")
    return claims


def user_claims(
    user_nkey: str,
    *,
    account: str,
    name: str,
    permissions: dict[str, Any],
    expires_at: int | None = None,
) -> dict[str, Any]:
    """A user placed in ``account`` (config mode: the audience names the account) with
    ``permissions`` (``{"pub": {"allow": [...]}, "sub": {"allow": [...]}}``)."""
    claims: dict[str, Any] = {
        "sub": user_nkey,
        "aud": account,
        "name": name,
        "nats": {**permissions, "subs": -1, "data": -1, "payload": -1},
    }
    if expires_at is not None:
        claims["exp"] = expires_at
    return claims


def authorization_response(
    request: dict[str, Any], signer: nkeys.KeyPair, *, user_jwt: str = "", error: str = ""
) -> str:
    """The reply to an authorization request: the user's JWT, or why it is refused."""
    nats_claims = {"jwt": user_jwt} if user_jwt else {"error": error or "not authorized"}
    claims = {
        "sub": request["nats"]["user_nkey"],
        "aud": request["nats"]["server_id"]["id"],
        "nats": nats_claims,
    }
    return encode(claims, signer, AUTHORIZATION_RESPONSE)
