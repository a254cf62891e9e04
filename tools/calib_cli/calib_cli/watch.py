"""``calib watch DIR``: a capture program's folder as an observatory's plugin (SPEC §11).

Every FITS or XISF file that appears under the folder is uploaded once it is complete —
its size unchanged for a few seconds and as long as its header says — through
``POST /api/v1/calibration/frames`` with the observatory's plugin token. What was sent is
kept in a state file beside the files, written after each upload, so a restart sends
nothing twice. A server error or an unreachable gateway is retried with backoff; a
refusal (a 4xx: too large, not an image, not allowed) is final and listed in the summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm import tqdm

from calib_core.fitsheader import HeaderIncompleteError, InvalidFitsError
from calib_core.imagefile import image_layout
from calib_core.limits import DEFAULT_MAX_HEADER_BYTES, ImageLimits

SUFFIXES = {".fits", ".fit", ".fts", ".xisf"}
STATE_FILE = ".calib-watch.json"
API = "/api/v1/calibration"
#: a file whose size has not changed for this long is no longer being written
SETTLE_S = 2.0
#: a FITS file shorter than its header says is awaited this long, then sent as it is
#: (the registry then records why it is refused)
ABANDONED_S = 120.0
FIRST_RETRY_S, MAX_RETRY_S = 1.0, 30.0
#: the most of a file read to judge whether it is whole (the longest header accepted)
HEAD_BYTES = DEFAULT_MAX_HEADER_BYTES


@dataclass
class Seen:
    """A file as last looked at: its size and modification time, and since when."""

    size: int
    mtime_ns: int
    since: float


@dataclass
class WatchState:
    """What was sent (``sent``: relative path → event id, size, mtime, sha256) and what
    the gateway refused (``refused``: relative path → why), kept in the state file."""

    path: Path
    sent: dict[str, dict] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WatchState:
        if not path.exists():
            return cls(path)
        stored = json.loads(path.read_text())
        return cls(path, stored.get("sent", {}), stored.get("refused", {}))

    def save(self) -> None:
        """Written whole to a temporary file and renamed: a crash never leaves half."""
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({"sent": self.sent, "refused": self.refused}, indent=1))
        os.replace(partial, self.path)

    def done(self, name: str, seen: Seen) -> bool:
        """Sent (this very version of the file) or refused already."""
        entry = self.sent.get(name)
        unchanged = entry is not None and (entry["size"], entry["mtime_ns"]) == (
            seen.size,
            seen.mtime_ns,
        )
        return unchanged or name in self.refused


def candidates(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` (hidden files and folders, and partial copies, skipped)."""
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in SUFFIXES:
                yield Path(root) / name


def whole(path: Path, size: int) -> bool:
    """A FITS or XISF file holds all its header declares (anything else is judged by its
    size settling alone)."""
    try:
        with path.open("rb") as file:
            head = file.read(HEAD_BYTES)
        # a header beyond the limits is no file still being written: sent, to be refused
        return size >= image_layout(head, limits=ImageLimits()).needed
    except HeaderIncompleteError:
        return size > len(head)  # a header longer than any accepted: the gateway says so
    except (InvalidFitsError, OSError):
        return True  # not for us to judge: the gateway or the registry says why


class Watcher:
    def __init__(
        self,
        folder: Path,
        *,
        observatory_id: str,
        token: str,
        url: str,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.folder, self.observatory_id = folder, observatory_id
        self.settle_s, self.clock = settle_s, clock
        self.state = WatchState.load(folder / STATE_FILE)
        self.seen: dict[str, Seen] = {}
        self.client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30, write=600),
        )
        self.retry_at: dict[str, tuple[float, float]] = {}  # name → (when, next delay)

    def ready(self) -> list[tuple[str, Path, Seen]]:
        """Files complete and not sent yet, oldest first."""
        now, found, present = self.clock(), [], set()
        for path in candidates(self.folder):
            name = path.relative_to(self.folder).as_posix()
            present.add(name)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            before = self.seen.get(name)
            if before is None or (before.size, before.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                self.seen[name] = Seen(stat.st_size, stat.st_mtime_ns, now)
                continue
            if self.state.done(name, before) or now - before.since < self.settle_s:
                continue
            if now < self.retry_at.get(name, (0.0, 0.0))[0]:
                continue
            if before.size and (now - before.since >= ABANDONED_S or whole(path, before.size)):
                found.append((name, path, before))
        self.seen = {name: seen for name, seen in self.seen.items() if name in present}
        return found

    def send(self, name: str, path: Path, seen: Seen) -> str:
        """Upload one file; returns "sent", "refused" or "retry"."""
        data = path.read_bytes()
        if len(data) != seen.size:
            return "retry"  # changed since it settled: look again
        try:
            response = self.client.post(
                f"{API}/frames",
                files={"file": (path.name, data, "application/octet-stream")},
                data={"observatory_id": self.observatory_id},
            )
        except httpx.HTTPError as error:
            return self._later(name, f"gateway unreachable: {error}")
        if response.status_code >= 500:
            return self._later(name, f"gateway answered {response.status_code}")
        if response.status_code >= 400:
            self.state.refused[name] = _reason(response)
            self.state.save()
            return "refused"
        self.state.sent[name] = {
            "event_id": response.json()["event_id"],
            "size": seen.size,
            "mtime_ns": seen.mtime_ns,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.state.save()
        self.retry_at.pop(name, None)
        return "sent"

    def _later(self, name: str, why: str) -> str:
        delay = self.retry_at.get(name, (0.0, FIRST_RETRY_S))[1]
        self.retry_at[name] = (self.clock() + delay, min(delay * 2, MAX_RETRY_S))
        tqdm.write(f"{name}: {why}; retrying in {delay:.0f} s")
        return "retry"

    def run(self, *, once: bool = False, poll_s: float = 1.0) -> None:
        """Upload complete files until interrupted (``once``: until nothing is left that
        is complete or awaited)."""
        with tqdm(desc=f"watching {self.folder}", unit="file", total=0) as bar:
            while True:
                for name, path, seen in self.ready():
                    outcome = self.send(name, path, seen)
                    if outcome != "retry":
                        bar.total += 1
                        bar.update(1)
                        bar.set_postfix(sent=len(self.state.sent), refused=len(self.state.refused))
                if once and not self.awaited():
                    return
                time.sleep(poll_s)

    def awaited(self) -> bool:
        """Any file seen that is neither sent nor refused yet."""
        return any(not self.state.done(name, seen) for name, seen in self.seen.items())

    def summary(self) -> str:
        lines = [f"{len(self.state.sent)} sent, {len(self.state.refused)} refused"]
        lines += [f"  refused {name}: {why}" for name, why in sorted(self.state.refused.items())]
        return "\n".join(lines)


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return f"{response.status_code} {detail}"[:500]
