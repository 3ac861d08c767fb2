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
from pathlib import Path
from typing import Any, TypeVar

from recorder import VIDEO_NAME
from recorder.clip import Clip, export_clip
from recorder.previews import make_previews
from server.errors import NotFound, ProtocolError
from server.library_index import (
    COLUMNS,
    DB_NAME,
    ID_PATTERN,
    Filters,
    RecordingInfo,
    connect,
    describe,
    make_cursor,
    page_query,
    read_cursor,
    stamps,
)
from server.scorecard import Criterion, Scored, parse_answers, parse_criteria, score

__all__ = [
    "DB_NAME",
    "Filters",
    "Library",
    "RecordingInfo",
    "page_query",
]

logger = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
MAX_PAGE = 200
MAX_COMMENT_CHARS = 2000
WEEK_S = 7 * 24 * 3600
_T = TypeVar("_T")


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
            self._db = connect(self.db_path)
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
                changed_at = stamps(Path(entry.path))
                if changed_at is None:
                    continue  # not finalized yet
                seen.add(entry.name)
                if full or known.get(entry.name) != changed_at:
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
                    f"INSERT INTO recordings ({COLUMNS}) "
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
        after = read_cursor(cursor) if cursor else None
        sql, params = page_query(filters, after, limit + 1)
        rows = await self._on_db(lambda db: db.execute(sql, params).fetchall())
        found = [RecordingInfo.from_row(tuple(r)) for r in rows]
        more = len(found) > limit
        found = found[:limit]
        next_cursor = make_cursor(found[-1]) if more else ""
        return found, next_cursor

    async def get(self, key: str) -> RecordingInfo:
        """The recording with this URL key, or NotFound."""
        if not KEY_PATTERN.fullmatch(key):
            raise NotFound("There is no such recording.")
        row = await self._on_db(
            lambda db: db.execute(
                f"SELECT {COLUMNS} FROM recordings WHERE key = ?", (key,)
            ).fetchone()
        )
        if row is None:
            raise NotFound("There is no such recording.")
        return RecordingInfo.from_row(tuple(row))

    async def staff_names(self) -> list[str]:
        rows = await self._on_db(
            lambda db: db.execute(
                # Scores outlive recordings deleted by retention: their trend too.
                "SELECT staff FROM recordings WHERE staff != '' "
                "UNION SELECT technician FROM scores ORDER BY 1"
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
                f"SELECT {COLUMNS} FROM recordings WHERE started < ?", (cutoff,)
            ).fetchall()
        )
        for row in rows:
            info = RecordingInfo.from_row(tuple(row))
            await self.delete(info, "retention", f"older than {self.retention_days} d")
        return [str(row[0]) for row in rows]


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
