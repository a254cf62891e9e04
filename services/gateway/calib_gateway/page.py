"""The admin web page: static files under ``/admin/`` (no build step), talking only to
the public JSON API. Served without authentication; the page signs in with a token."""

from __future__ import annotations

from pathlib import Path

from litestar import Response
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"

#: Everything the page loads comes from the gateway itself: no external network.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


admin_page = create_static_files_router(
    path="/admin",
    directories=[STATIC_DIR],
    html_mode=True,
    name="admin-page",
    # revalidate each load, so a new release's modules are never mixed with cached old ones
    cache_control=CacheControlHeader(no_cache=True),
    after_request=_secure,
    include_in_schema=False,
)
