"""SPEC §8 ``POST /uploads``, §12: the keys of presigned uploads (hostile file names made
safe) and how long a pending upload protects its object (pure rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calib_core.presigned import (
    DEFAULT_FILENAME,
    MAX_FILENAME_CHARS,
    PENDING_UPLOAD_GRACE,
    UPLOAD_URL_LIFETIME,
    may_be_announced,
    pending_cutoff,
    pending_upload,
    safe_filename,
    still_pending,
    upload_key,
)
from tests.unit.core.factories import NOW

SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("dark_0001.fits", "dark_0001.fits"),
        ("Flat L 2024-06-01.fit", "Flat_L_2024-06-01.fit"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32.fits", "system32.fits"),
        ("C:\\frames\\dark.fits", "dark.fits"),
        ("/absolute/path/light.xisf", "light.xisf"),
        ("frames/", DEFAULT_FILENAME),
        ("..", DEFAULT_FILENAME),
        (".", DEFAULT_FILENAME),
        (".hidden.fits", "hidden.fits"),
        ("a..b....fits", "a.b.fits"),
        ("dark\x00.fits", "dark_.fits"),
        ("dark\n\r\t01.fits", "dark_01.fits"),
        ("\x1b[31mred\x1b[0m.fits", "31mred_0m.fits"),
        ("Dunkel_ß_ø.fits", "Dunkel_.fits"),
        ("ｆｕｌｌｗｉｄｔｈ.fits", "fullwidth.fits"),  # NFKC: the ASCII letters they stand for
        ("?*<>|\"'`$(){};&", DEFAULT_FILENAME),
        ("%2e%2e%2fx.fits", "2e_2e_2fx.fits"),
        ("", DEFAULT_FILENAME),
    ],
)
def test_a_file_name_keeps_its_last_part_in_safe_characters(name, safe):
    assert safe_filename(name) == safe


def test_a_long_name_is_cut_keeping_its_extension():
    assert safe_filename("d" * 500 + ".fits") == "d" * (MAX_FILENAME_CHARS - 5) + ".fits"
    assert safe_filename("x" * 500) == "x" * MAX_FILENAME_CHARS
    assert safe_filename("x" * 300 + "." + "y" * 50) == ("x" * 300 + "." + "y" * 50)[:100]


@given(st.text(max_size=2000))
def test_any_name_makes_one_safe_key_part(name):
    safe = safe_filename(name)
    assert 0 < len(safe) <= MAX_FILENAME_CHARS
    assert set(safe) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert ".." not in safe and not safe.startswith(".")
    assert upload_key("obs-1", "u1", name) == f"frames/obs-1/u1/{safe}"


def test_an_upload_is_under_its_observatorys_frames_and_expires_in_fifteen_minutes():
    upload = pending_upload("obs-1", "../dark.fits", "abc", NOW)
    assert upload.storage_key == "frames/obs-1/abc/dark.fits"
    assert (upload.observatory_id, upload.created_at) == ("obs-1", NOW)
    assert upload.expires_at == NOW + UPLOAD_URL_LIFETIME == NOW + timedelta(minutes=15)
    assert may_be_announced(upload.storage_key)
    assert not may_be_announced("masters/obs-1/m.fits")


def test_a_pending_upload_protects_its_object_until_the_grace_after_its_expiry():
    upload = pending_upload("obs-1", "dark.fits", "abc", NOW)
    end = upload.expires_at + PENDING_UPLOAD_GRACE
    assert still_pending(upload, upload.expires_at + SECOND)  # the URL is dead, the upload not
    assert still_pending(upload, end)
    assert not still_pending(upload, end + SECOND)
    assert pending_cutoff(end) == upload.expires_at
