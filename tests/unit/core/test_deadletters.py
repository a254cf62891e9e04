"""SPEC §12 poison messages: the backoff, the bound, and the identity of a message's record."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from calib_core.deadletters import (
    DeadLetter,
    DeadLetterStatus,
    backoff_s,
    error_text,
    exhausted,
    letter_id,
    replay_msg_id,
)

STORED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (10, 60.0), (10_000, 60.0)],
)
def test_the_backoff_doubles_from_a_second_up_to_a_minute(failures, delay):
    assert backoff_s(failures) == delay


@pytest.mark.parametrize(
    ("failures", "bound", "given_up"),
    [(1, 10, False), (9, 10, False), (10, 10, True), (11, 10, True), (1, 1, True), (1, 0, True)],
)
def test_a_message_is_given_up_on_at_its_bound(failures, bound, given_up):
    assert exhausted(failures, bound) is given_up


def test_a_message_keeps_its_record_id_across_redeliveries_and_not_across_streams():
    first = letter_id("registry", "frame.registered.o", b"{}", 7, STORED)
    assert first == letter_id("registry", "frame.registered.o", b"{}", 7, STORED)
    assert first.startswith("registry-7-")
    assert first != letter_id("lifecycle-master-describe", "frame.registered.o", b"{}", 7, STORED)
    assert first != letter_id("registry", "frame.registered.o", b"{}", 8, STORED)
    recreated = datetime(2025, 1, 1, tzinfo=UTC)  # a new stream that reuses sequence 7
    assert first != letter_id("registry", "frame.registered.o", b"{}", 7, recreated)


def test_without_a_stream_sequence_the_id_is_the_digest_of_the_message():
    one = letter_id("stacker", "stack.requested.o", b'{"job_id": "j"}', None, None)
    assert one == letter_id("stacker", "stack.requested.o", b'{"job_id": "j"}', None, None)
    assert one != letter_id("stacker", "stack.requested.o", b'{"job_id": "k"}', None, None)
    assert one != letter_id("stacker", "stack.requested.p", b'{"job_id": "j"}', None, None)


def test_errors_are_kept_with_their_type_and_bounded():
    assert error_text(ConnectionError("S3 is away")) == "ConnectionError: S3 is away"
    assert error_text("invalid event: x") == "invalid event: x"
    assert len(error_text(ValueError("x" * 10_000))) == 2000


def test_each_replay_has_a_new_message_id():
    letter = DeadLetter(
        id="registry-7-1",
        consumer="registry",
        subject="frame.registered.o",
        body=b"{}",
        observatory_id="o",
        status=DeadLetterStatus.DEAD,
        attempts=10,
        error="e",
        first_seen=STORED,
        last_seen=STORED,
    )
    assert replay_msg_id(letter) == "replay-registry-7-1-1"
    assert replay_msg_id(msgspec.structs.replace(letter, replays=1)) == "replay-registry-7-1-2"
