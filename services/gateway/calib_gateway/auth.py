"""Bearer tokens: every request outside the public paths authenticates as a Principal."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from calib_app.access import authenticate


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("missing bearer token")
        principal = await authenticate(connection.app.state.gateway.access, token.strip())
        if principal is None:
            raise NotAuthorizedException("invalid or revoked token")
        return AuthenticationResult(user=principal, auth=token)
