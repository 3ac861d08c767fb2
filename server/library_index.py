"""The library's index of recordings: what a directory says, and how it is queried.

:func:`describe` reads a finalized recording directory (``meta.json``, the
timeline) into a :class:`RecordingInfo`, one row of the ``recordings`` table.
:func:`page_query` builds the keyset query of one page of the list: newest first
by ``(started, id)``, filtered, with words searched in the ``recordings_words``
FTS5 table (whose rowid is the recording's). Pure functions and SQL text: the
:class:`server.library.Library` runs them on its database thread.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder import META_NAME, TIMELINE_NAME, VIDEO_NAME, read_meta, read_timeline
from recorder.previews import THUMB_NAME
from server.errors import ProtocolError

__all__ = [
    "COLUMNS",
    "DB_NAME",
    "ID_PATTERN",
    "Filters",
    "RecordingInfo",
    "connect",
    "describe",
    "make_cursor",
    "page_query",
    "read_cursor",
    "stamps",
    "text_query",
]

logger = logging.getLogger(__name__)

DB_NAME = "library.sqlite3"
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Names of recording directories the library accepts."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    started REAL NOT NULL,
    duration_s REAL NOT NULL,
    start_s REAL NOT NULL,
    staff TEXT NOT NULL,
    customer TEXT NOT NULL,
    queue TEXT NOT NULL,
    disposition TEXT NOT NULL,
    title TEXT NOT NULL,
    reason TEXT NOT NULL,
    has_video INTEGER NOT NULL,
    thumb INTEGER NOT NULL,
    events INTEGER NOT NULL,
    meta_mtime REAL NOT NULL,
    timeline_mtime REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_newest ON recordings (started DESC, id DESC);
CREATE INDEX IF NOT EXISTS recordings_staff
    ON recordings (staff, started DESC, id DESC);
CREATE INDEX IF NOT EXISTS recordings_queue
    ON recordings (queue, started DESC, id DESC);
CREATE VIRTUAL TABLE IF NOT EXISTS recordings_words
    USING fts5 (body, tokenize = 'unicode61');
CREATE TABLE IF NOT EXISTS bookmarks (
    id INTEGER PRIMARY KEY,
    recording TEXT NOT NULL,
    t REAL NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS bookmarks_recording ON bookmarks (recording, t);
CREATE TABLE IF NOT EXISTS forms (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    criteria TEXT NOT NULL,
    author TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY,
    recording TEXT NOT NULL,
    form INTEGER NOT NULL REFERENCES forms (id),
    technician TEXT NOT NULL,
    trainer TEXT NOT NULL,
    recorded REAL NOT NULL,
    created REAL NOT NULL,
    score REAL NOT NULL,
    critical_failed INTEGER NOT NULL,
    answers TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_technician ON scores (technician, recorded);
CREATE INDEX IF NOT EXISTS scores_recording ON scores (recording);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    recording TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_recording ON audit (recording, at);
"""

COLUMNS = (
    "id, key, kind, started, duration_s, start_s, staff, customer, queue, "
    "disposition, title, reason, has_video, thumb, events, meta_mtime, timeline_mtime"
)


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """One row of the index: what the library shows about a recording."""

    id: str
    key: str
    kind: str  # "support" or "room"
    started: float  # Unix seconds of the video's first frame
    duration_s: float
    start_s: float  # timeline time of the video's zero
    staff: str  # the technician, or the room's presenter
    customer: str
    queue: str
    disposition: str
    title: str
    reason: str
    has_video: bool
    thumb: bool
    events: int
    meta_mtime: float
    timeline_mtime: float
    notes: str = field(default="", compare=False)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "kind": self.kind,
            "started": self.started,
            "duration_s": self.duration_s,
            "start_s": self.start_s,
            "staff": self.staff,
            "customer": self.customer,
            "queue": self.queue,
            "disposition": self.disposition,
            "title": self.title,
            "reason": self.reason,
            "has_video": self.has_video,
            "thumb": self.thumb,
            "events": self.events,
        }

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.key,
            self.kind,
            self.started,
            self.duration_s,
            self.start_s,
            self.staff,
            self.customer,
            self.queue,
            self.disposition,
            self.title,
            self.reason,
            int(self.has_video),
            int(self.thumb),
            self.events,
            self.meta_mtime,
            self.timeline_mtime,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> RecordingInfo:
        values = list(row)
        values[12], values[13] = bool(values[12]), bool(values[13])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class Filters:
    """What the library list is narrowed to; empty fields do not filter."""

    kind: str = ""
    staff: str = ""
    queue: str = ""
    disposition: str = ""
    since: float | None = None
    until: float | None = None
    text: str = ""
    with_video: bool = True
    """Leave out sessions that ended before any media was recorded."""


def describe(directory: Path, key: str) -> RecordingInfo | None:
    """Index data of a finalized recording directory; None while it is not."""
    meta_path = directory / META_NAME
    try:
        meta_mtime = meta_path.stat().st_mtime
        meta = read_meta(directory)
    except (OSError, ValueError) as exc:
        logger.warning("recording %s: meta.json unreadable: %s", directory.name, exc)
        return None
    if meta is None:
        return None

    timeline = directory / TIMELINE_NAME
    events: list[dict[str, Any]] = []
    timeline_mtime = 0.0
    with contextlib.suppress(FileNotFoundError):
        timeline_mtime = timeline.stat().st_mtime
        events = read_timeline(timeline)
    facts = _facts(events)

    duration = float(meta.get("duration_s") or 0.0)
    started = meta.get("started_at")
    if not isinstance(started, int | float):
        # Older or empty recordings: meta.json is written at the end.
        started = meta_mtime - duration
    has_video = not meta.get("empty", True) and (directory / VIDEO_NAME).exists()
    return RecordingInfo(
        id=directory.name,
        key=key,
        kind=facts["kind"],
        started=round(float(started), 3),
        duration_s=duration,
        start_s=float(meta.get("start_s") or 0.0),
        staff=facts["staff"],
        customer=facts["customer"],
        queue=facts["queue"],
        disposition=facts["disposition"],
        title=facts["title"],
        reason=str(meta.get("reason") or ""),
        has_video=has_video,
        thumb=(directory / THUMB_NAME).exists(),
        events=len(events),
        meta_mtime=meta_mtime,
        timeline_mtime=timeline_mtime,
        notes=facts["notes"],
    )


def _facts(events: list[dict[str, Any]]) -> dict[str, str]:
    """Who, where and how it ended, from the timeline's events."""
    facts = dict.fromkeys(("staff", "customer", "queue", "disposition", "title"), "")
    facts["kind"], facts["notes"] = "support", ""
    for event in events:
        kind = event.get("kind")
        if kind == "created":
            facts["staff"] = str(event.get("technician") or "")
            facts["customer"] = str(event.get("customer") or "")
            facts["queue"] = str(event.get("queue") or "")
        elif kind == "assigned" and event.get("technician"):
            facts["staff"] = str(event["technician"])
            facts["queue"] = str(event.get("queue") or facts["queue"])
        elif kind == "transfer":
            facts["queue"] = str(event.get("queue") or facts["queue"])
        elif kind == "disposition":
            facts["disposition"] = str(event.get("code") or "")
            facts["notes"] = str(event.get("notes") or "")
            facts["staff"] = str(event.get("technician") or facts["staff"])
        elif kind == "recording" and event.get("room"):
            facts["kind"] = "room"
            facts["title"] = str(event.get("title") or "")
            facts["staff"] = str(event.get("presenter") or facts["staff"])
    return facts


def page_query(
    filters: Filters, after: tuple[float, str] | None, limit: int
) -> tuple[str, list[Any]]:
    """The keyset query of one page: newest first, after ``(started, id)``."""
    where: list[str] = ["has_video = 1"] if filters.with_video else []
    params: list[Any] = []
    for column in ("kind", "staff", "queue", "disposition"):
        value = getattr(filters, column)
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if filters.since is not None:
        where.append("started >= ?")
        params.append(filters.since)
    if filters.until is not None:
        where.append("started < ?")
        params.append(filters.until)
    match = text_query(filters.text)
    if match:
        where.append(
            "rowid IN (SELECT rowid FROM recordings_words WHERE recordings_words "
            "MATCH ?)"
        )
        params.append(match)
    if after is not None:
        where.append("(started, id) < (?, ?)")
        params.extend(after)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    sql = (
        f"SELECT {COLUMNS} FROM recordings {clause}"
        "ORDER BY started DESC, id DESC LIMIT ?"
    )
    return sql, [*params, limit]


def text_query(text: str) -> str:
    """Words of a search box as an FTS5 query: every word, as a prefix."""
    words = re.findall(r"\w+", text)[:8]
    return " ".join(f'"{word}"*' for word in words)


def make_cursor(info: RecordingInfo) -> str:
    raw = json.dumps([info.started, info.id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def read_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, recording_id = json.loads(raw)
        if not isinstance(started, int | float) or not isinstance(recording_id, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):
        raise ProtocolError(
            "The page cursor is not valid.", code="bad_request"
        ) from None
    return float(started), recording_id


def stamps(directory: Path) -> tuple[float, float] | None:
    try:
        meta = (directory / META_NAME).stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        timeline = (directory / TIMELINE_NAME).stat().st_mtime
    except FileNotFoundError:
        timeline = 0.0
    return meta, timeline


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(_SCHEMA)
    return db
