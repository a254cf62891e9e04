"""When ``calib watch`` deems a file complete enough to send, on real files."""

from __future__ import annotations

import numpy as np

from calib_cli.watch import Seen, WatchState, candidates, whole
from calib_core.imagefile import image_layout
from tests.support.hostile import declared_image
from tests.support.xisf import xisf_bytes
from tests.unit.stack.conftest import write_frame


def test_a_fits_or_xisf_file_is_whole_once_it_holds_what_its_header_declares(tmp_path):
    fits_data = write_frame(tmp_path / "source.fits", np.ones((48, 64))).read_bytes()
    xisf_data = xisf_bytes(np.ones((48, 64), np.uint16), codec="zlib")
    for data, path in ((fits_data, tmp_path / "dark.fits"), (xisf_data, tmp_path / "dark.xisf")):
        needed = image_layout(data).needed  # the image's last byte (the padding may follow)
        for length, expected in ((100, False), (needed - 1, False), (needed, True)):
            path.write_bytes(data[:length])
            assert whole(path, length) is expected, (path.name, length)


def test_what_no_waiting_would_mend_is_sent_for_the_gateway_to_refuse(tmp_path):
    giant = tmp_path / "giant.fits"
    giant.write_bytes(declared_image(NAXIS1=60000, NAXIS2=60000))
    text = tmp_path / "text.fits"
    text.write_bytes(b"not a FITS file at all")
    xisf = tmp_path / "light.xisf"
    xisf.write_bytes(xisf_bytes(np.ones((4, 4), np.uint16), header="<not xml"))
    for path in (giant, text, xisf):
        assert whole(path, path.stat().st_size), path.name


def test_images_are_found_in_subfolders_but_not_hidden_ones(tmp_path):
    for name in ("a.fits", "night/b.FIT", "c.xisf", "d.txt", ".hidden/e.fits", ".f.fits"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in candidates(tmp_path))
    assert found == ["a.fits", "c.xisf", "night/b.FIT"]


def test_the_state_survives_a_restart_and_knows_a_changed_file(tmp_path):
    state = WatchState.load(tmp_path / "state.json")
    state.sent["a.fits"] = {"event_id": "e", "size": 10, "mtime_ns": 5, "sha256": "x"}
    state.refused["b.fits"] = "422 too large"
    state.save()
    again = WatchState.load(tmp_path / "state.json")
    assert again.done("a.fits", Seen(10, 5, 0.0)) and again.done("b.fits", Seen(1, 1, 0.0))
    assert not again.done("a.fits", Seen(11, 6, 0.0))  # rewritten since: sent again
    assert not again.done("c.fits", Seen(10, 5, 0.0))
