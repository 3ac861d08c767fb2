"""Library paging: keyset pages (what the library does) against OFFSET pages.

Fills a library index with N recordings (rows only, no media), then reads pages
of 50 newest-first, with and without a technician filter, at several depths, both
ways: keyset (``WHERE (started, id) < (last seen)``, on the index) and the naive
``LIMIT 50 OFFSET k``, which reads and throws away k rows first. Also times a
word search (FTS5) against a ``LIKE '%word%'`` scan of the same text. Prints
medians in ms and the ratio. Run from the repository root:

    .venv/bin/python -m bench.library --rows 50000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.library import DB_NAME, Filters, Library, RecordingInfo, page_query

PAGE = 50
REPEATS = 7
WORDS = ["gasket", "pump", "boiler", "grinder", "descale", "steam", "leak", "valve"]


def fill(db: sqlite3.Connection, rows: int, key_of: Callable[[str], str]) -> None:
    rng = random.Random(7)
    now = 1_800_000_000.0
    infos = []
    texts = []
    for i in range(rows):
        recording_id = f"{i:016x}"
        staff = f"tech-{rng.randrange(200)}"
        notes = " ".join(rng.sample(WORDS, 2)) + f" case {i}"
        info = RecordingInfo(
            id=recording_id,
            key=key_of(recording_id),
            kind="support",
            started=now - rng.uniform(0, 90 * 86400),
            duration_s=rng.uniform(60, 1800),
            start_s=0.3,
            staff=staff,
            customer=f"c-{i:06x}",
            queue=rng.choice(["support", "billing", "repairs"]),
            disposition=rng.choice(["resolved", "follow-up", "escalated"]),
            title="",
            reason="customer ended the session",
            has_video=True,
            thumb=True,
            events=40,
            meta_mtime=now,
            timeline_mtime=now,
        )
        infos.append(info.row())
        texts.append((recording_id, f"{recording_id} {staff} {notes}"))
    with db:
        db.executemany(f"INSERT INTO recordings VALUES ({', '.join('?' * 17)})", infos)
        rowids = dict(db.execute("SELECT id, rowid FROM recordings"))
        db.executemany(
            "INSERT INTO recordings_words (rowid, body) VALUES (?, ?)",
            [(rowids[recording_id], body) for recording_id, body in texts],
        )
        db.execute("CREATE TEMP TABLE plain (id TEXT, body TEXT)")
        db.executemany("INSERT INTO plain VALUES (?, ?)", texts)


def timed(db: sqlite3.Connection, sql: str, params: list[Any]) -> float:
    """Median ms of one query over REPEATS runs."""
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        db.execute(sql, params).fetchall()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def keyset_page(
    db: sqlite3.Connection, filters: Filters, depth: int
) -> tuple[str, list[Any]]:
    """The query of page ``depth`` by keyset: the cursor is the row before it."""
    after = None
    if depth:
        sql, params = page_query(filters, None, depth * PAGE)
        last = db.execute(sql, params).fetchall()[-1]
        after = (last[3], last[0])  # (started, id)
    return page_query(filters, after, PAGE)


def run(db: sqlite3.Connection, rows: int) -> list[tuple[str, float, float]]:
    results = []
    for label, filters in (
        ("newest first", Filters()),
        ("one queue", Filters(queue="billing")),
    ):
        matching = db.execute(
            "SELECT COUNT(*) FROM recordings"
            + (" WHERE queue = ?" if filters.queue else ""),
            (filters.queue,) if filters.queue else (),
        ).fetchone()[0]
        for fraction in (0.0, 0.5, 0.99):
            depth = int(matching * fraction) // PAGE
            sql, params = keyset_page(db, filters, depth)
            keyset = timed(db, sql, params)
            plain_sql, plain_params = page_query(filters, None, PAGE)
            offset_sql = plain_sql + " OFFSET ?"
            offset_params = [*plain_params, depth * PAGE]
            offset = timed(db, offset_sql, offset_params)
            same = db.execute(sql, params).fetchall() == (
                db.execute(offset_sql, offset_params).fetchall()
            )
            assert same, f"keyset and OFFSET disagree at page {depth}"
            results.append((f"{label}, page {depth + 1}", keyset, offset))

    for label, words in (
        ("search two common words (1 in 28 match)", ["gasket", "leak"]),
        ("search one rare word (1 match)", [str(rows // 3)]),
    ):
        fts_sql, fts_params = page_query(Filters(text=" ".join(words)), None, PAGE)
        fts = timed(db, fts_sql, fts_params)
        like_sql = (
            "SELECT r.* FROM recordings r JOIN plain p ON p.id = r.id WHERE "
            + " AND ".join("p.body LIKE ?" for _ in words)
            + " ORDER BY r.started DESC, r.id DESC LIMIT ?"
        )
        like_params = [*(f"%{w}%" for w in words), PAGE]
        like = timed(db, like_sql, like_params)
        results.append((label, fts, like))
    return results


async def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        library = Library(Path(tmp) / "recordings", Path(tmp) / DB_NAME, "bench" * 4)
        await library.open()
        await library.close()
        db = sqlite3.connect(Path(tmp) / DB_NAME)
        t0 = time.perf_counter()
        fill(db, rows, library.key_of)
        filled = time.perf_counter() - t0
        results = run(db, rows)
        db.close()

    print(
        f"\nLibrary paging over {rows} recordings, {PAGE} a page "
        f"(filled in {filled:.1f} s); median of {REPEATS}, ms\n"
    )
    print("| read | keyset / FTS5 | OFFSET / LIKE | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for label, fast, naive in results:
        print(f"| {label} | {fast:.2f} | {naive:.2f} | {naive / fast:.1f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    asyncio.run(main(args.rows))
