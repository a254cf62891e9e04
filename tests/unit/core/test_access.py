"""SPEC §8 permissions."""

from __future__ import annotations

import pytest

from calib_core.access import Capability, Membership, Principal, allowed

OWN, OTHER = "obs-own", "obs-other"
ALL = list(Capability)


def viewer():
    return Principal(token_id="t1", user_id="u1", memberships=[Membership(observatory_id=OWN)])


def obs_admin():
    return Principal(
        token_id="t2",
        user_id="u2",
        memberships=[
            Membership(observatory_id=OWN, can_admin=True),
            Membership(observatory_id="obs-third", can_admin=False),
        ],
    )


def server_admin():
    return Principal(token_id="t3", user_id="u3", server_admin=True)


def plugin():
    return Principal(token_id="t4", plugin_observatory=OWN)


def nobody():
    return Principal(token_id="t5", user_id="u5")


# (principal, capability, observatory) -> allowed
TABLE = {
    # view-only member: view own, nothing else
    ("viewer", Capability.VIEW, OWN): True,
    ("viewer", Capability.CAPTURE_PLAN, OWN): True,
    ("viewer", Capability.CAPTURE_PLAN, OTHER): False,
    ("viewer", Capability.MANAGE, OWN): False,
    ("viewer", Capability.REGISTER, OWN): False,
    ("viewer", Capability.SERVER, OWN): False,
    ("viewer", Capability.VIEW, OTHER): False,
    ("viewer", Capability.MANAGE, OTHER): False,
    # observatory admin: view + manage + register own; no server tasks; nothing elsewhere
    ("obs_admin", Capability.VIEW, OWN): True,
    ("obs_admin", Capability.MANAGE, OWN): True,
    ("obs_admin", Capability.REGISTER, OWN): True,
    ("obs_admin", Capability.SERVER, OWN): False,
    ("obs_admin", Capability.VIEW, OTHER): False,
    ("obs_admin", Capability.MANAGE, OTHER): False,
    ("obs_admin", Capability.REGISTER, OTHER): False,
    ("obs_admin", Capability.VIEW, "obs-third"): True,
    ("obs_admin", Capability.MANAGE, "obs-third"): False,
    # server admin: everything, everywhere
    ("server_admin", Capability.VIEW, OWN): True,
    ("server_admin", Capability.MANAGE, OTHER): True,
    ("server_admin", Capability.REGISTER, OTHER): True,
    ("server_admin", Capability.SERVER, None): True,
    ("server_admin", Capability.SERVER, OTHER): True,
    # plugin token: register + read the capture plan of its own observatory only
    ("plugin", Capability.REGISTER, OWN): True,
    ("plugin", Capability.CAPTURE_PLAN, OWN): True,
    ("plugin", Capability.CAPTURE_PLAN, OTHER): False,
    ("plugin", Capability.VIEW, OWN): False,
    ("plugin", Capability.MANAGE, OWN): False,
    ("plugin", Capability.SERVER, OWN): False,
    ("plugin", Capability.REGISTER, OTHER): False,
    ("plugin", Capability.VIEW, OTHER): False,
    # no memberships
    ("nobody", Capability.VIEW, OWN): False,
    ("nobody", Capability.REGISTER, OWN): False,
}


@pytest.mark.parametrize(
    ("who", "capability", "observatory", "expected"),
    [(*key, value) for key, value in TABLE.items()],
)
def test_permission_table(who, capability, observatory, expected):
    principal = globals()[who]()
    assert allowed(principal, capability, observatory) is expected


@pytest.mark.parametrize("who", ["viewer", "obs_admin", "plugin", "nobody"])
def test_server_capability_only_for_server_admins(who):
    principal = globals()[who]()
    for observatory in (None, OWN, OTHER):
        assert allowed(principal, Capability.SERVER, observatory) is False


@pytest.mark.parametrize("who", ["viewer", "obs_admin", "plugin"])
@pytest.mark.parametrize("capability", ALL)
def test_observatory_capabilities_need_an_observatory(who, capability):
    assert allowed(globals()[who](), capability, None) is False


def test_server_admin_any_capability_without_observatory():
    for capability in ALL:
        assert allowed(server_admin(), capability, None) is True


def test_visible_observatories():
    assert viewer().visible_observatories() == {OWN}
    assert obs_admin().visible_observatories() == {OWN, "obs-third"}
    assert server_admin().visible_observatories() is None
    assert plugin().visible_observatories() == {OWN}
    assert nobody().visible_observatories() == set()


def test_default_memberships_are_not_shared():
    a, b = nobody(), nobody()
    a.memberships.append(Membership(observatory_id=OWN))
    assert b.memberships == []
