"""Bearer tokens: opaque random secrets, stored only as hashes, resolved to a Principal."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from pymongo.asynchronous.database import AsyncDatabase

from calib_core.access import Membership, Principal

BOOTSTRAP_USER_ID = "bootstrap-admin"


def new_token() -> str:
    return "calib_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Users and their tokens in MongoDB (``users``, ``tokens``)."""

    def __init__(self, db: AsyncDatabase):
        self.users = db["users"]
        self.tokens = db["tokens"]

    async def issue(
        self,
        *,
        user_id: str | None,
        plugin_observatory: str | None,
        now: datetime,
        token: str | None = None,
    ) -> tuple[str, str]:
        """Store a new token's hash; returns (token_id, token). The token is shown once."""
        token = token or new_token()
        token_id = uuid.uuid4().hex
        await self.tokens.update_one(
            {"hash": token_hash(token)},
            {
                "$setOnInsert": {
                    "_id": token_id,
                    "user_id": user_id,
                    "plugin_observatory": plugin_observatory,
                    "revoked": False,
                    "created_at": now,
                }
            },
            upsert=True,
        )
        stored = await self.tokens.find_one({"hash": token_hash(token)})
        return stored["_id"], token

    async def create_user(
        self,
        *,
        name: str,
        server_admin: bool,
        memberships: list[Membership],
        now: datetime,
        user_id: str | None = None,
    ) -> str:
        user_id = user_id or uuid.uuid4().hex
        await self.users.update_one(
            {"_id": user_id},
            {
                "$set": {
                    "name": name,
                    "server_admin": server_admin,
                    "memberships": [
                        {"observatory_id": m.observatory_id, "can_admin": m.can_admin}
                        for m in memberships
                    ],
                },
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )
        return user_id

    async def user(self, user_id: str) -> dict[str, Any] | None:
        return await self.users.find_one({"_id": user_id})

    async def all_users(self) -> list[dict[str, Any]]:
        """Users with their live (unrevoked) token ids; never a token or its hash."""
        live: dict[str, list[str]] = {}
        async for token in self.tokens.find(
            {"revoked": False, "user_id": {"$ne": None}}, {"user_id": 1}
        ):
            live.setdefault(token["user_id"], []).append(token["_id"])
        return [
            {**user, "token_ids": sorted(live.get(user["_id"], []))}
            async for user in self.users.find().sort("_id")
        ]

    async def revoke(self, token_id: str) -> bool:
        result = await self.tokens.update_one({"_id": token_id}, {"$set": {"revoked": True}})
        return result.matched_count == 1

    async def resolve(self, token: str) -> Principal | None:
        record = await self.tokens.find_one({"hash": token_hash(token), "revoked": False})
        if record is None:
            return None
        if record.get("plugin_observatory"):
            return Principal(
                token_id=record["_id"],
                name="plugin",
                plugin_observatory=record["plugin_observatory"],
            )
        user: dict[str, Any] | None = await self.users.find_one({"_id": record.get("user_id")})
        if user is None:
            return None
        return Principal(
            token_id=record["_id"],
            user_id=user["_id"],
            name=user.get("name", ""),
            server_admin=bool(user.get("server_admin")),
            memberships=[Membership(**m) for m in user.get("memberships", [])],
        )

    async def bootstrap(self, token: str, now: datetime) -> None:
        """Make ``CALIB_BOOTSTRAP_ADMIN_TOKEN`` a server admin's token."""
        await self.create_user(
            name="bootstrap admin",
            server_admin=True,
            memberships=[],
            now=now,
            user_id=BOOTSTRAP_USER_ID,
        )
        await self.issue(user_id=BOOTSTRAP_USER_ID, plugin_observatory=None, now=now, token=token)
        await self.tokens.update_one({"hash": token_hash(token)}, {"$set": {"revoked": False}})


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("missing bearer token")
        store: TokenStore = connection.app.state.tokens
        principal = await store.resolve(token.strip())
        if principal is None:
            raise NotAuthorizedException("invalid or revoked token")
        return AuthenticationResult(user=principal, auth=token)
