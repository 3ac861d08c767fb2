"""The recordings library: an index of every recording, and what trainers add to it.

The truth about what happened is in each recording's directory (``video.mp4``,
``meta.json``, ``timeline.jsonl``). The library keeps an index of it in SQLite
(WAL mode) at ``<data-dir>/library.sqlite3``, beside what only it holds:
bookmarks and comments, scorecard forms, scores and the audit log. Deleting the
database loses those, never a recording: :meth:`Library.rescan` rebuilds the
index from the directories.

Threads::

    event loop ── await ──▶ db thread (one sqlite connection; every query)
               └─ await ──▶ media thread (thumbnails, preview strip, clip export)

Recordings are found two ways: :meth:`Library.index_soon` right after a support
session finalizes, and a periodic rescan (``library_scan_s``) that stats every
directory and re-reads those whose ``meta.json`` or timeline changed (demo rooms,
dispositions added after the end). The same loop applies retention.

Each recording has an unguessable ``key`` (an HMAC of its id with the node
secret): URLs use it, so knowing a session id is not enough to fetch its media.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from recorder import META_NAME, TIMELINE_NAME, VIDEO_NAME, read_meta, read_timeline
from recorder.clip import Clip, export_clip
from recorder.previews import THUMB_NAME, make_previews
from server.errors import NotFound, ProtocolError
from server.scorecard import Criterion, Scored, parse_answers, parse_criteria, score

__all__ = ["ID_PATTERN", "Filters", "Library", "RecordingInfo", "describe"]

logger = logging.getLogger(__name__)

DB_NAME = "library.sqlite3"
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Names of recording directories the library accepts."""
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
MAX_PAGE = 200
MAX_COMMENT_CHARS = 2000
WEEK_S = 7 * 24 * 3600
_T = TypeVar("_T")

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

_COLUMNS = (
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


class Library:
    """The index and the trainers' data of one node's recordings."""

    def __init__(
        self,
        recordings_dir: Path,
        db_path: Path,
        secret: str,
        *,
        retention_days: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recordings_dir = recordings_dir
        self.db_path = db_path
        self.retention_days = retention_days
        self._clock = clock
        self._key = hashlib.sha256(b"tapline-recordings\0" + secret.encode()).digest()
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="library-db")
        self._media_thread = ThreadPoolExecutor(1, thread_name_prefix="library-media")
        self._db: sqlite3.Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._previewing: set[str] = set()
        self._closed = False

    # threads

    async def _on_db(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise RuntimeError("the library is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, self._run_db, work)

    def _run_db(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._db is None:
            self._db = _connect(self.db_path)
        return work(self._db)

    async def _on_media(self, work: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._media_thread, work)

    async def open(self) -> None:
        """Open (creating) the database and bring the index up to date."""
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        await self._on_db(lambda db: None)
        await self.rescan()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._media_thread.shutdown, True, cancel_futures=True)
        await loop.run_in_executor(self._db_thread, self._close_db)
        await asyncio.to_thread(self._db_thread.shutdown, True)

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # indexing

    def key_of(self, recording_id: str) -> str:
        digest = hmac.new(self._key, recording_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    def index_soon(self, recording_id: str) -> None:
        """Index one recording (just finalized) and make its previews, in the back."""
        if self._closed or not ID_PATTERN.fullmatch(recording_id):
            return
        task = asyncio.get_running_loop().create_task(
            self._index_one(recording_id), name=f"index {recording_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _index_one(self, recording_id: str) -> None:
        try:
            await self.index([recording_id])
        except Exception:
            logger.exception("recording %s: indexing failed", recording_id)

    async def index(self, ids: list[str]) -> list[RecordingInfo]:
        """(Re)index these recordings now; make missing previews."""
        found = await self._on_db(lambda db: self._index_ids(db, ids))
        for info in found:
            if info.has_video and not info.thumb:
                await self._previews(info)
        return found

    async def rescan(self, full: bool = False) -> list[str]:
        """Bring the index in line with the directories; returns ids (re)indexed.

        ``full`` re-reads every directory, not only those whose files changed.
        """
        changed = await self._on_db(lambda db: self._rescan(db, full))
        for info in changed:
            if info.has_video and not info.thumb:
                await self._previews(info)
        return [info.id for info in changed]

    def _rescan(self, db: sqlite3.Connection, full: bool) -> list[RecordingInfo]:
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        known = {
            row[0]: (row[1], row[2])
            for row in db.execute(
                "SELECT id, meta_mtime, timeline_mtime FROM recordings"
            )
        }
        seen: set[str] = set()
        stale: list[str] = []
        with os.scandir(self.recordings_dir) as entries:
            for entry in entries:
                if not (entry.is_dir() and ID_PATTERN.fullmatch(entry.name)):
                    continue
                stamps = _stamps(Path(entry.path))
                if stamps is None:
                    continue  # not finalized yet
                seen.add(entry.name)
                if full or known.get(entry.name) != stamps:
                    stale.append(entry.name)

        gone = sorted(set(known) - seen)
        with db:
            for recording_id in gone:
                _forget(db, recording_id)
        if gone:
            logger.info("library: %d recordings gone from disk", len(gone))
        indexed = self._index_ids(db, stale)
        if indexed:
            logger.info("library: indexed %d recordings", len(indexed))
        return indexed

    def _index_ids(self, db: sqlite3.Connection, ids: list[str]) -> list[RecordingInfo]:
        found = []
        for recording_id in ids:
            directory = self.recordings_dir / recording_id
            info = describe(directory, self.key_of(recording_id))
            if info is None:
                continue
            body = " ".join(
                part
                for part in (
                    info.id,
                    info.kind,
                    info.staff,
                    info.customer,
                    info.queue,
                    info.disposition,
                    info.title,
                    info.reason,
                    info.notes,
                )
                if part
            )
            with db:
                _forget(db, info.id)
                cursor = db.execute(
                    f"INSERT INTO recordings ({_COLUMNS}) "
                    f"VALUES ({', '.join('?' * 17)})",
                    info.row(),
                )
                # The words row shares the recording's rowid: searches join on it.
                db.execute(
                    "INSERT INTO recordings_words (rowid, body) VALUES (?, ?)",
                    (cursor.lastrowid, body),
                )
            found.append(info)
        return found

    async def _previews(self, info: RecordingInfo) -> None:
        if info.id in self._previewing:
            return  # the hook and a scan found it at once
        self._previewing.add(info.id)
        directory = self.recordings_dir / info.id
        try:
            previews = await self._on_media(lambda: make_previews(directory))
        except Exception:
            logger.exception("recording %s: previews failed", info.id)
            return
        finally:
            self._previewing.discard(info.id)
        if previews.thumb:
            await self._on_db(
                lambda db: _execute(
                    db, "UPDATE recordings SET thumb = 1 WHERE id = ?", (info.id,)
                )
            )

    async def export_clip(
        self, info: RecordingInfo, target: Path, start_s: float, end_s: float
    ) -> Clip:
        """Cut ``[start_s, end_s)`` into ``target`` on the media thread."""
        source = self.recordings_dir / info.id / VIDEO_NAME
        return await self._on_media(lambda: export_clip(source, target, start_s, end_s))

    async def run(self, scan_s: float) -> None:
        """Rescan and apply retention now, then every ``scan_s``, until cancelled.

        The first scan is the rebuild after a lost database: it runs here, in the
        background, so the server serves while it reads many directories.
        """
        while True:
            try:
                await self.rescan()
                await self.expire()
            except Exception:
                logger.exception("library: periodic scan failed")
            await asyncio.sleep(scan_s)

    # reading

    async def page(
        self, filters: Filters, *, limit: int = 50, cursor: str = ""
    ) -> tuple[list[RecordingInfo], str]:
        """Newest first; returns the page and the cursor of the next ("" at the end)."""
        limit = max(1, min(limit, MAX_PAGE))
        after = _read_cursor(cursor) if cursor else None
        sql, params = page_query(filters, after, limit + 1)
        rows = await self._on_db(lambda db: db.execute(sql, params).fetchall())
        found = [RecordingInfo.from_row(tuple(r)) for r in rows]
        more = len(found) > limit
        found = found[:limit]
        next_cursor = _make_cursor(found[-1]) if more else ""
        return found, next_cursor

    async def get(self, key: str) -> RecordingInfo:
        """The recording with this URL key, or NotFound."""
        if not KEY_PATTERN.fullmatch(key):
            raise NotFound("There is no such recording.")
        row = await self._on_db(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM recordings WHERE key = ?", (key,)
            ).fetchone()
        )
        if row is None:
            raise NotFound("There is no such recording.")
        return RecordingInfo.from_row(tuple(row))

    async def staff_names(self) -> list[str]:
        rows = await self._on_db(
            lambda db: db.execute(
                "SELECT DISTINCT staff FROM recordings WHERE staff != '' ORDER BY staff"
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    # bookmarks and comments

    async def add_bookmark(
        self, info: RecordingInfo, t: float, body: str, author: str
    ) -> dict[str, Any]:
        if not (0 <= t <= max(info.duration_s, 0.0) + 1.0):
            raise ProtocolError(
                "The time is outside the recording.", code="bad_request"
            )
        body = body.strip()
        if not 0 < len(body) <= MAX_COMMENT_CHARS:
            raise ProtocolError(
                f"A comment is 1-{MAX_COMMENT_CHARS} characters.", code="bad_request"
            )
        created = self._clock()

        def insert(db: sqlite3.Connection) -> int:
            with db:
                cursor = db.execute(
                    "INSERT INTO bookmarks (recording, t, author, body, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (info.id, round(t, 3), author, body, created),
                )
            return int(cursor.lastrowid or 0)

        bookmark_id = await self._on_db(insert)
        return {
            "id": bookmark_id,
            "t": round(t, 3),
            "author": author,
            "body": body,
            "created": created,
        }

    async def bookmarks(self, info: RecordingInfo) -> list[dict[str, Any]]:
        rows = await self._on_db(
            lambda db: db.execute(
                "SELECT id, t, author, body, created FROM bookmarks "
                "WHERE recording = ? ORDER BY t, id",
                (info.id,),
            ).fetchall()
        )
        names = ("id", "t", "author", "body", "created")
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def delete_bookmark(
        self, info: RecordingInfo, bookmark_id: int, by: str, admin: bool
    ) -> None:
        """Authors delete their own bookmarks; admins any."""

        def delete(db: sqlite3.Connection) -> int:
            sql = "DELETE FROM bookmarks WHERE id = ? AND recording = ?"
            params: tuple[Any, ...] = (bookmark_id, info.id)
            if not admin:
                sql += " AND author = ?"
                params += (by,)
            with db:
                return db.execute(sql, params).rowcount

        if await self._on_db(delete) == 0:
            raise NotFound("There is no such bookmark of yours.")

    # scorecards

    async def create_form(self, name: str, raw_criteria: Any, author: str) -> int:
        name = name.strip() if isinstance(name, str) else ""
        if not 0 < len(name) <= 100:
            raise ProtocolError(
                "A form needs a name of 1-100 characters.", code="bad_request"
            )
        criteria = parse_criteria(raw_criteria)
        text = json.dumps([c.wire() for c in criteria])
        created = self._clock()

        def insert(db: sqlite3.Connection) -> int:
            with db:
                cursor = db.execute(
                    "INSERT INTO forms (name, criteria, author, created) "
                    "VALUES (?, ?, ?, ?)",
                    (name, text, author, created),
                )
            return int(cursor.lastrowid or 0)

        return await self._on_db(insert)

    async def forms(self) -> list[dict[str, Any]]:
        rows = await self._on_db(
            lambda db: db.execute(
                "SELECT id, name, criteria, author, created FROM forms ORDER BY id"
            ).fetchall()
        )
        return [
            {
                "id": row[0],
                "name": row[1],
                "criteria": json.loads(row[2]),
                "author": row[3],
                "created": row[4],
            }
            for row in rows
        ]

    async def _criteria(self, form_id: int) -> list[Criterion]:
        row = await self._on_db(
            lambda db: db.execute(
                "SELECT criteria FROM forms WHERE id = ?", (form_id,)
            ).fetchone()
        )
        if row is None:
            raise NotFound("There is no such scorecard form.")
        return [Criterion(**c) for c in json.loads(row[0])]

    async def add_score(
        self,
        info: RecordingInfo,
        form_id: int,
        raw_answers: Any,
        trainer: str,
        comment: str = "",
    ) -> dict[str, Any]:
        """Score the recording's technician against a form; returns the result."""
        if not info.staff:
            raise ProtocolError(
                "This recording has nobody to score.", code="bad_request"
            )
        if len(comment) > MAX_COMMENT_CHARS:
            raise ProtocolError("The comment is too long.", code="bad_request")
        criteria = await self._criteria(form_id)
        answers = parse_answers(criteria, raw_answers)
        result = score(criteria, answers)
        created = self._clock()

        def insert(db: sqlite3.Connection) -> int:
            with db:
                cursor = db.execute(
                    "INSERT INTO scores (recording, form, technician, trainer, "
                    "recorded, created, score, critical_failed, answers, comment) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        info.id,
                        form_id,
                        info.staff,
                        trainer,
                        info.started,
                        created,
                        result.score,
                        int(result.critical_failed),
                        json.dumps(answers),
                        comment,
                    ),
                )
            return int(cursor.lastrowid or 0)

        score_id = await self._on_db(insert)
        return _score_wire(score_id, info, form_id, trainer, created, result)

    async def scores(self, info: RecordingInfo) -> list[dict[str, Any]]:
        rows = await self._on_db(
            lambda db: db.execute(
                "SELECT id, form, technician, trainer, created, score, "
                "critical_failed, answers, comment FROM scores "
                "WHERE recording = ? ORDER BY id",
                (info.id,),
            ).fetchall()
        )
        names = ("id", "form", "technician", "trainer", "created", "score")
        out = []
        for row in rows:
            item = dict(zip(names, row[:6], strict=True))
            item["critical_failed"] = bool(row[6])
            item["answers"] = json.loads(row[7])
            item["comment"] = row[8]
            out.append(item)
        return out

    async def trend(
        self, technician: str, weeks: int = 8, now: float | None = None
    ) -> list[dict[str, Any]]:
        """Weekly scores of one technician, oldest week first, by session date."""
        weeks = max(1, min(weeks, 104))
        end = self._clock() if now is None else now
        start = end - weeks * WEEK_S
        rows = await self._on_db(
            lambda db: db.execute(
                "SELECT recorded, score, critical_failed FROM scores "
                "WHERE technician = ? AND recorded >= ? AND recorded < ?",
                (technician, start, end),
            ).fetchall()
        )
        buckets: list[list[tuple[float, bool]]] = [[] for _ in range(weeks)]
        for recorded, value, failed in rows:
            buckets[min(weeks - 1, int((recorded - start) // WEEK_S))].append(
                (float(value), bool(failed))
            )
        return [
            {
                "week_start": round(start + i * WEEK_S, 3),
                "count": len(bucket),
                "average": (
                    round(sum(v for v, _ in bucket) / len(bucket), 1)
                    if bucket
                    else None
                ),
                "critical_fails": sum(1 for _, f in bucket if f),
            }
            for i, bucket in enumerate(buckets)
        ]

    # audit, deletion, retention

    async def audit(
        self, actor: str, action: str, recording: str = "", detail: str = ""
    ) -> None:
        at = self._clock()
        await self._on_db(
            lambda db: _execute(
                db,
                "INSERT INTO audit (at, actor, action, recording, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                (at, actor, action, recording, detail),
            )
        )

    async def audit_log(
        self, limit: int = 100, before: int | None = None, recording: str = ""
    ) -> list[dict[str, Any]]:
        limit = max(1, min(limit, MAX_PAGE))
        sql = "SELECT id, at, actor, action, recording, detail FROM audit WHERE 1"
        params: list[Any] = []
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        if recording:
            sql += " AND recording = ?"
            params.append(recording)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = await self._on_db(lambda db: db.execute(sql, params).fetchall())
        names = ("id", "at", "actor", "action", "recording", "detail")
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def delete(self, info: RecordingInfo, actor: str, why: str) -> None:
        """Delete the recording's files and rows; the audit log keeps a line."""
        directory = self.recordings_dir / info.id

        def remove(db: sqlite3.Connection) -> None:
            shutil.rmtree(directory, ignore_errors=True)
            with db:
                _forget(db, info.id)
                db.execute("DELETE FROM bookmarks WHERE recording = ?", (info.id,))
                db.execute(
                    "INSERT INTO audit (at, actor, action, recording, detail) "
                    "VALUES (?, ?, 'delete', ?, ?)",
                    (self._clock(), actor, info.id, why),
                )

        await self._on_db(remove)
        logger.info("recording %s: deleted by %s (%s)", info.id, actor, why)

    async def expire(self) -> list[str]:
        """Delete recordings older than the retention; returns their ids."""
        if self.retention_days <= 0:
            return []
        cutoff = self._clock() - self.retention_days * 24 * 3600
        rows = await self._on_db(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM recordings WHERE started < ?", (cutoff,)
            ).fetchall()
        )
        for row in rows:
            info = RecordingInfo.from_row(tuple(row))
            await self.delete(info, "retention", f"older than {self.retention_days} d")
        return [str(row[0]) for row in rows]


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
        f"SELECT {_COLUMNS} FROM recordings {clause}"
        "ORDER BY started DESC, id DESC LIMIT ?"
    )
    return sql, [*params, limit]


def text_query(text: str) -> str:
    """Words of a search box as an FTS5 query: every word, as a prefix."""
    words = re.findall(r"\w+", text)[:8]
    return " ".join(f'"{word}"*' for word in words)


def _make_cursor(info: RecordingInfo) -> str:
    raw = json.dumps([info.started, info.id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _read_cursor(cursor: str) -> tuple[float, str]:
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


def _stamps(directory: Path) -> tuple[float, float] | None:
    try:
        meta = (directory / META_NAME).stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        timeline = (directory / TIMELINE_NAME).stat().st_mtime
    except FileNotFoundError:
        timeline = 0.0
    return meta, timeline


def _forget(db: sqlite3.Connection, recording_id: str) -> None:
    row = db.execute(
        "SELECT rowid FROM recordings WHERE id = ?", (recording_id,)
    ).fetchone()
    if row is not None:
        db.execute("DELETE FROM recordings_words WHERE rowid = ?", row)
        db.execute("DELETE FROM recordings WHERE rowid = ?", row)


def _execute(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    with db:
        db.execute(sql, params)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(_SCHEMA)
    return db


def _score_wire(
    score_id: int,
    info: RecordingInfo,
    form_id: int,
    trainer: str,
    created: float,
    result: Scored,
) -> dict[str, Any]:
    return {
        "id": score_id,
        "form": form_id,
        "technician": info.staff,
        "trainer": trainer,
        "created": created,
        "score": result.score,
        "critical_failed": result.critical_failed,
    }
