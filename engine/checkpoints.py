"""Replay checkpoints kept on disk, so a what-if replays its history up to the window only once.

A :class:`~engine.replay.Checkpoint` is the whole state of a replay stopped at a moment of event
time. ``yujing backtest --compare`` makes one at the start of its window (the history before it
is replayed with the current thresholds, identical for both sides) and keeps it here; the next
what-if on the same history and window, whatever its candidate, starts from it.

An entry is found by what the replay depended on: the code (every source file of ``models``,
``alerts`` and ``yujing``), the partitions, the allowed lateness, the current thresholds' version
and the stopping moment (or, for a window moved forward, the latest earlier one, which the replay
goes on from); and it is used only if the files it read still begin with the very bytes
it read (SHA-256 of each file's prefix up to where the checkpoint stands, and of the whole
feedback file, which is read whole). New records appended to the files since (another day of
retained topics) keep it valid: the replay goes on from it through them. The events directory
itself may move (``--from-kafka`` downloads to a new temporary one every time).

With a checkpoint, an entry keeps the *recording* of the rest of that replay with the current
thresholds (:class:`engine.rejudge.Trace` and its warnings), valid for the files exactly as they
were read to their ends: the next what-if judges it again with its candidate instead of replaying
the window.

Entries are pickles written by this user for this user, the merchants' states in them in the
worker's compact codec (:mod:`engine.state_codec`: a sixth of their pickled size); the least
recently used beyond ``keep`` are removed.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from engine.replay import Checkpoint, event_files
from engine.state_codec import decode_merchant, encode_merchant
from models.calendar import SHANGHAI

FORMAT = 3  # bump when the entry layout changes
PACKAGES = ("contract", "models", "alerts", "engine")  # the pure packages: all a replay runs
ROOT = Path(__file__).resolve().parent.parent


@cache
def code_fingerprint() -> str:
    """SHA-256 of every source file a replay runs: a checkpoint is only as good as that code."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# path -> ((size, mtime_ns), {length: digest}): each file is read once per what-if, however many
# prefixes (checkpoints found, the one kept) and whole-file digests (recordings) it asks about.
_DIGESTS: dict[str, tuple[tuple[int, int], dict[int | None, str]]] = {}


def _digests(path: Path, lengths: Iterable[int | None]) -> dict[int | None, str]:
    """SHA-256 of the first ``length`` bytes of ``path`` for each of ``lengths`` (None: all of it;
    "" for a file shorter than the length), in one pass."""
    stat = path.stat()
    stamp = (stat.st_size, stat.st_mtime_ns)
    known_stamp, known = _DIGESTS.get(str(path), (stamp, {}))
    if known_stamp != stamp:
        known = {}
    wanted = sorted({n for n in lengths if n not in known and n is not None}) + [None]
    if any(n not in known for n in wanted):
        digest, offset = hashlib.sha256(), 0
        with path.open("rb") as source:
            for length in wanted:
                while length is None or offset < length:
                    chunk = source.read(1 << 20 if length is None else min(1 << 20, length - offset))
                    if not chunk:
                        break
                    digest.update(chunk)
                    offset += len(chunk)
                # A file shorter than the prefix read before is not the same file.
                known[length] = digest.hexdigest() if length is None or offset == length else ""
        _DIGESTS[str(path)] = (stamp, known)
    return known


def files_read(checkpoint: Checkpoint) -> dict[str, dict[str, object]]:
    """What the checkpoint read of each file: its name, the length read and that prefix's digest."""
    read: dict[str, dict[str, object]] = {}
    for kind, path in event_files(checkpoint.events_dir).items():
        length = None if kind == "feedback" else checkpoint.positions.get(kind, (0, 0, 0.0))[0]
        read[kind] = {"name": path.name, "length": length, "sha256": _digests(path, [length])[length]}
    return read


@contextmanager
def _no_gc() -> Iterator[None]:
    # Unpickling builds millions of small objects (the detectors' trees): with the cyclic
    # collector running it takes five times as long, and none of them is garbage.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CheckpointCache:
    """Checkpoints under ``root`` (``$YUJING_CACHE_DIR/checkpoints``), ``keep`` at most."""

    def __init__(self, root: Path, keep: int = 4) -> None:
        self.root = Path(root)
        self.keep = keep

    def family(self, *, partitions: int, allowed_lateness: timedelta, thresholds_version: str) -> str:
        """What a checkpoint's replay depended on, but for where it stopped."""
        parts = [FORMAT, code_fingerprint(), partitions, allowed_lateness.total_seconds(), thresholds_version]
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:24]

    def load(
        self, events_dir: Path, *, partitions: int, allowed_lateness: timedelta, thresholds_version: str,
        stop_at: datetime,
    ) -> Checkpoint | None:
        """The checkpoint of this replay, if one is kept and ``events_dir`` still begins with
        what it read; None otherwise (also for an entry that cannot be read)."""
        found = self.find(events_dir, partitions=partitions, allowed_lateness=allowed_lateness,
                          thresholds_version=thresholds_version, stop_at=stop_at)
        return found[0] if found is not None else None

    def find(
        self, events_dir: Path, *, partitions: int, allowed_lateness: timedelta, thresholds_version: str,
        stop_at: datetime, before: bool = False,
    ) -> tuple[Checkpoint, Path] | None:
        """As :meth:`load`, with the entry it came from (for :meth:`reload` and the recording).
        ``before``: the latest checkpoint of the same replay stopped *earlier* than ``stop_at``
        (a window moved forward: the replay goes on from there)."""
        family = self.family(partitions=partitions, allowed_lateness=allowed_lateness,
                             thresholds_version=thresholds_version)
        wanted = int(stop_at.timestamp())
        stops = []
        for entry in self.root.glob(f"{family}-*"):
            try:
                moment = int(entry.name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if (moment < wanted) if before else (moment == wanted):
                stops.append((moment, entry))
        sources = event_files(Path(events_dir))
        candidates = []
        for _, entry in sorted(stops, reverse=True):
            try:
                read = orjson.loads((entry / "meta.json").read_bytes())["files"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if isinstance(read, dict) and set(read) == set(sources):
                candidates.append((entry, read))
        digests = {kind: _digests(path, [info["length"] for _, read in candidates for k, info in read.items() if k == kind])
                   for kind, path in sources.items()} if candidates else {}
        for entry, read in candidates:
            if any(digests[kind].get(info["length"]) != info["sha256"] for kind, info in read.items()):
                continue
            try:
                checkpoint = self.reload(entry, events_dir)
            except (OSError, ValueError, TypeError, pickle.UnpicklingError, EOFError, AttributeError):
                continue
            os.utime(entry)  # recently used
            return checkpoint, entry
        return None

    @staticmethod
    def stopped_at(entry: Path) -> date:
        """The (Shanghai) day at whose start the entry's replay stopped."""
        return datetime.fromtimestamp(int(entry.name.split("-")[1]), SHANGHAI).date()

    @staticmethod
    def reload(entry: Path, events_dir: Path) -> Checkpoint:
        """The entry's checkpoint (again: a replay or a rejudging uses one up)."""
        with (entry / "checkpoint.pickle").open("rb") as stored, _no_gc():
            merchants, checkpoint = pickle.load(stored)
            if not isinstance(checkpoint, Checkpoint) or not isinstance(merchants, dict):
                raise ValueError("not a checkpoint entry")
            checkpoint.merchants = {merchant_id: decode_merchant(data) for merchant_id, data in merchants.items()}
        checkpoint.events_dir = Path(events_dir)
        return checkpoint

    # -- recordings of the rest of the replay ----------------------------------------------------
    @staticmethod
    def _recording(entry: Path, events_dir: Path) -> Path:
        # The rest of the replay read the files to their ends: its recording is for these bytes only.
        whole = {kind: _digests(path, [None])[None] for kind, path in sorted(event_files(Path(events_dir)).items())}
        return entry / f"recording-{hashlib.sha256(orjson.dumps(whole)).hexdigest()[:16]}.pickle"

    def load_recording(self, entry: Path, events_dir: Path) -> Any | None:
        """What :meth:`save_recording` kept for these very files after this checkpoint, or None."""
        path = self._recording(entry, events_dir)
        try:
            with path.open("rb") as stored, _no_gc():
                return pickle.load(stored)
        except (OSError, ValueError, TypeError, pickle.UnpicklingError, EOFError, AttributeError):
            return None

    def save_recording(self, entry: Path, events_dir: Path, recording: Any) -> Path:
        """Keep ``recording`` (a picklable record of the replay from the checkpoint to the files'
        ends; see :mod:`engine.rejudge`) with the entry; older recordings of it are dropped."""
        path = self._recording(entry, events_dir)
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        with staging.open("wb") as sink:
            pickle.dump(recording, sink, protocol=pickle.HIGHEST_PROTOCOL)
        for old in entry.glob("recording-*.pickle"):
            old.unlink(missing_ok=True)
        staging.rename(path)
        os.utime(entry)
        return path

    def save(self, checkpoint: Checkpoint, *, thresholds_version: str, stop_at: datetime) -> Path:
        """Keep ``checkpoint`` (written to a temporary directory, then renamed: never half an entry)."""
        read = files_read(checkpoint)
        family = self.family(partitions=checkpoint.partitions, allowed_lateness=checkpoint.allowed_lateness,
                             thresholds_version=thresholds_version)
        content = hashlib.sha256(orjson.dumps(read, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
        key = f"{family}-{int(stop_at.timestamp())}"
        entry = self.root / f"{key}-{content}"
        if entry.exists():
            os.utime(entry)
            return entry
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{key}-{content}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        merchants = {merchant_id: encode_merchant(state) for merchant_id, state in checkpoint.merchants.items()}
        with (staging / "checkpoint.pickle").open("wb") as sink:
            pickle.dump((merchants, replace(checkpoint, merchants={})), sink, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {"format": FORMAT, "files": read, "thresholds_version": thresholds_version,
                "stop_at": stop_at.isoformat(), "events": checkpoint.result.events, "saved_at": time.time()}
        (staging / "meta.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        try:
            staging.rename(entry)
        except OSError:  # another what-if saved the same entry meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        self._prune()
        return entry

    def _prune(self) -> None:
        entries = sorted((e for e in self.root.iterdir() if e.is_dir() and not e.name.startswith(".")),
                         key=lambda e: e.stat().st_mtime, reverse=True)
        for old in entries[self.keep:]:
            shutil.rmtree(old, ignore_errors=True)
