"""SPEC §8: a token resolves to the principal of its user, or of its observatory's plugin."""

from __future__ import annotations

import hashlib

from calib_core.access import ApiToken, Membership, Principal, User, principal_of, token_hash
from tests.unit.core.factories import NOW, OBS

USER = User(
    id="u1",
    name="carol",
    memberships=[Membership(observatory_id=OBS, can_admin=True)],
    created_at=NOW,
)


def token(**overrides) -> ApiToken:
    values = {"id": "t1", "hash": token_hash("secret"), "created_at": NOW, **overrides}
    return ApiToken(**values)


def test_only_the_hash_of_a_token_is_kept_and_it_is_its_sha256():
    assert token_hash("calib_abc") == hashlib.sha256(b"calib_abc").hexdigest()
    assert token_hash("calib_abc") != token_hash("calib_abd")


def test_a_user_token_is_its_user():
    assert principal_of(token(user_id="u1"), USER) == Principal(
        token_id="t1",
        user_id="u1",
        name="carol",
        server_admin=False,
        memberships=[Membership(observatory_id=OBS, can_admin=True)],
    )


def test_a_plugin_token_is_its_observatory_plugin_whoever_else_is_named():
    assert principal_of(token(plugin_observatory=OBS), None) == Principal(
        token_id="t1", name="plugin", plugin_observatory=OBS
    )


def test_a_token_of_a_user_that_no_longer_exists_is_nobody():
    assert principal_of(token(user_id="gone"), None) is None
