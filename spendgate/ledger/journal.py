"""Append-only journal segments: what makes a SIGKILL lose nothing.

Before a call's last byte goes to the client, its ledger row is appended to the
current segment with one `os.write` (a copy into the page cache: no fsync, no wait
on the database). The kernel keeps those bytes if the process is killed. Each
segment is `flock`ed by its live owner; on start-up, segments nobody holds belong
to a dead process and are replayed. Replays insert with the request id as primary
key, so a row already written is never counted twice.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from spendgate.ledger.quarantine import Landed
from spendgate.models import LedgerRow

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)  # identity, so segments can key a Counter
class Segment:
    path: Path
    fd: int
    written: int = 0  # rows appended (changed only on the event-loop thread)
    committed: int = 0  # rows in the database (changed only on the writer thread)
    size: int = 0
    closed: bool = False


class Journal:
    def __init__(self, directory: Path, segment_bytes: int, handoff: bool = False) -> None:
        """With `handoff`, another process lands the rows (`ledger/ingest.py`): a segment is
        released (its lock dropped, so the ingester knows it is complete) as soon as the next one
        starts, and never deleted here."""
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.handoff = handoff
        self._stem = f"journal-{os.getpid()}-{time.time_ns()}"
        self._seq = 0
        directory.mkdir(parents=True, exist_ok=True)
        self.current = self._open_segment()
        self.segments: list[Segment] = [self.current]

    def _open_segment(self) -> Segment:
        self._seq += 1
        path = self.directory / f"{self._stem}-{self._seq:06d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return Segment(path=path, fd=fd)

    def append(self, row: LedgerRow) -> Segment:
        """Persist one row past a crash of this process; returns its segment."""
        try:  # its __dict__: the fields in order (as row.as_dict()), the same bytes as the dataclass
            line = orjson.dumps(row.__dict__, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # a value orjson refuses (an int past 64 bits): never lose the row for it
            line = json.dumps(dataclasses.asdict(row), default=str).encode() + b"\n"
        segment = self.current
        os.write(segment.fd, line)
        segment.written += 1
        segment.size += len(line)
        if segment.size >= self.segment_bytes:
            segment.closed = True
            self.current = self._open_segment()
            self.segments.append(self.current)
            if self.handoff:
                os.close(segment.fd)
                self.segments.remove(segment)
        return segment

    def mark_committed(self, segment: Segment, count: int) -> None:
        """Called by the writer thread once rows are in the database."""
        segment.committed += count
        if segment.closed and segment.committed >= segment.written:
            self._drop(segment)

    def close(self) -> None:
        """On clean shutdown (after the writer drained): fully committed segments go."""
        for segment in list(self.segments):
            segment.closed = True
            if self.handoff:
                os.close(segment.fd)  # released: the ingester lands what is left, then deletes it
                self.segments.remove(segment)
            elif segment.committed >= segment.written:
                self._drop(segment)
            else:
                os.close(segment.fd)  # kept on disk; the next start replays it

    def _drop(self, segment: Segment) -> None:
        try:
            segment.path.unlink(missing_ok=True)
        finally:
            os.close(segment.fd)
            if segment in self.segments:
                self.segments.remove(segment)


def recover_journals(
    directory: Path, land: Callable[[Sequence[dict[str, Any]], str], Landed]
) -> tuple[int, Landed]:
    """Replay segments left by dead processes; returns (lines read, what landed). `land(lines,
    segment name)` lands decoded lines (`quarantine.land_lines`, as the ingest process does).

    Never stops start-up: a row the database refuses for good is quarantined by `land`, and a
    segment that cannot be replayed now (the database went away) is kept for the next start.
    """
    if not directory.exists():
        return 0, Landed()
    read, landed = 0, Landed()
    for path in sorted(directory.glob("journal-*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process owns it
            lines = decode_lines(path.read_bytes().splitlines(), path.name)
            for start in range(0, len(lines), 1000):
                landed += land(lines[start : start + 1000], path.name)
            read += len(lines)
            path.unlink(missing_ok=True)
        except Exception:
            log.exception("could not replay %s now; it is kept for the next start", path.name)
        finally:
            os.close(fd)
    if read:
        log.info(
            "replayed %d journal rows: %d were not yet in the ledger, %d quarantined",
            read,
            landed.inserted,
            landed.quarantined,
        )
    return read, landed


def decode_lines(lines: Sequence[bytes], name: str) -> list[dict[str, Any]]:
    """Journal lines -> their JSON objects; a torn line (not an object) is skipped."""
    decoded = []
    for line in lines:
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        if type(value) is dict:
            decoded.append(value)
        else:
            log.warning("skipping a torn line in %s", name)
    return decoded
