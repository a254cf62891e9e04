"""Who may do what on the bus (SPEC §10, §12): every service connects as a user of its
own; a plugin connects with its plugin token and may publish only its observatory's
``frame.registered`` and receive only the replies on its own inbox prefix. The server
enforces these permissions; this module only states them."""

from __future__ import annotations

from typing import Any

from calib_core import events, wiring

#: The bus users with passwords: one per service, ``calib`` for the command line and
#: tools (simulator, benchmarks, tests), ``system`` for the server's system account
#: (the gateway closes revoked plugins' connections with it).
CLI_USER = "calib"
SYSTEM_USER = "system"
SERVICE_USERS = (*wiring.SERVICES, CLI_USER)
PASSWORD_USERS = (*SERVICE_USERS, SYSTEM_USER)

#: Plugins' connections are named after their token, so a revoked token's live
#: connections can be found and closed.
PLUGIN_USER_PREFIX = "plugin:"


def inbox_prefix(observatory_id: str) -> str:
    """The inbox prefix a plugin must connect with (``nats.connect(...,
    inbox_prefix=...)``): JetStream's acknowledgements of its publishes come there."""
    return f"_INBOX_{observatory_id}"


def plugin_permissions(observatory_id: str) -> dict[str, Any]:
    """A plugin's permissions, as NATS user claims state them."""
    return {
        "pub": {"allow": [events.subject(events.FRAME_REGISTERED, observatory_id)]},
        "sub": {"allow": [f"{inbox_prefix(observatory_id)}.>"]},
    }


def plugin_user(token_id: str) -> str:
    return PLUGIN_USER_PREFIX + token_id


def token_id_of(user: str) -> str | None:
    """The plugin token a connection's user name stands for; None for other users."""
    if user.startswith(PLUGIN_USER_PREFIX) and len(user) > len(PLUGIN_USER_PREFIX):
        return user[len(PLUGIN_USER_PREFIX) :]
    return None
