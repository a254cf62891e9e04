"""Dead letters (SPEC §12, server admins only): the messages a consumer gave up on,
listed, and replayed to the stream."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, QueryParameter

from calib_app import dead_letters as office
from calib_app.dead_letters import DeadLetterOffice
from calib_core.deadletters import DeadLetter, DeadLetterStatus
from calib_gateway.dependencies import Injected
from calib_gateway.guards import server_admin


class DeadLetterOut(msgspec.Struct, kw_only=True):
    """A dead letter: the message (subject, body), which consumer failed it, how often and
    why, and its replays."""

    id: str
    consumer: str
    subject: str
    observatory_id: str
    #: the message's body as text (bytes that are not UTF-8 shown replaced)
    body: str
    body_size: int
    status: DeadLetterStatus
    #: failed deliveries (1 for a permanent failure)
    attempts: int
    error: str
    permanent: bool
    first_seen: datetime
    last_seen: datetime
    stream_sequence: int | None
    replays: int
    replayed_at: datetime | None
    replay_msg_id: str | None


class DeadLetterList(msgspec.Struct, kw_only=True):
    items: list[DeadLetterOut]


def _out(letter: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        id=letter.id,
        consumer=letter.consumer,
        subject=letter.subject,
        observatory_id=letter.observatory_id,
        body=letter.body.decode("utf-8", errors="replace"),
        body_size=len(letter.body),
        status=letter.status,
        attempts=letter.attempts,
        error=letter.error,
        permanent=letter.permanent,
        first_seen=letter.first_seen,
        last_seen=letter.last_seen,
        stream_sequence=letter.stream_sequence,
        replays=letter.replays,
        replayed_at=letter.replayed_at,
        replay_msg_id=letter.replay_msg_id,
    )


class DeadLetterController(Controller):
    path = "/api/v1/admin/dead-letters"
    guards = [server_admin]

    @get("/")
    async def list_dead_letters(
        self,
        dead_letters: Injected[DeadLetterOffice],
        status: Annotated[
            DeadLetterStatus | None,
            QueryParameter(description="only these (``retrying``: failing, not yet dead)"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
    ) -> DeadLetterList:
        """Dead letters (dead and replayed), the most recently failed first."""
        letters = await office.dead_letters(dead_letters, status, limit)
        return DeadLetterList(items=[_out(letter) for letter in letters])

    @post("/{dead_letter_id:str}/replay", status_code=202)
    async def replay(
        self, dead_letters: Injected[DeadLetterOffice], dead_letter_id: FromPath[str]
    ) -> DeadLetterOut:
        """Publish the message again (its subject and body, a new ``Nats-Msg-Id``): every
        consumer of its subject takes it again. 404 for an id that is no dead letter."""
        return _out(await office.replay(dead_letters, dead_letter_id))
