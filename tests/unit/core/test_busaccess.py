"""Bus permissions as stated (the server enforces them)."""

from calib_core.busaccess import (
    PASSWORD_USERS,
    inbox_prefix,
    plugin_permissions,
    plugin_user,
    token_id_of,
)
from calib_core.wiring import SERVICES


def test_a_plugin_publishes_only_its_frames_and_hears_only_its_inbox():
    assert plugin_permissions("obs-1") == {
        "pub": {"allow": ["frame.registered.obs-1"]},
        "sub": {"allow": ["_INBOX_obs-1.>"]},
    }
    assert inbox_prefix("obs-1") == "_INBOX_obs-1"


def test_a_plugin_connection_names_its_token_and_no_other_user_does():
    assert token_id_of(plugin_user("abc")) == "abc"
    assert token_id_of("plugin:") is None
    for user in PASSWORD_USERS:
        assert token_id_of(user) is None


def test_every_service_has_a_bus_user_of_its_own():
    assert set(SERVICES) < set(PASSWORD_USERS)
    assert len(set(PASSWORD_USERS)) == len(PASSWORD_USERS)
