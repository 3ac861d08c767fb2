"""The library's index, paging, search, scorecards, trend and retention (no network).

Recording directories are written the way the recorder leaves them: ``meta.json``
and ``timeline.jsonl`` (and, for one, real video), so indexing reads real files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from recorder import Recording, Timeline
from recorder.layout import write_meta
from server.errors import NotFound, ProtocolError
from server.library import WEEK_S, Filters, Library
from server.scorecard import Criterion, parse_answers, parse_criteria, score
from tests.peers import wait_for
from tests.recorder.synth_media import audio_frames, feed, h264_packets, tone

NOW = 1_800_000_000.0
SECRET = "library-test-secret-0123456789"


def write_recording(
    recordings: Path,
    recording_id: str,
    *,
    started: float,
    events: list[dict[str, Any]],
    duration_s: float = 60.0,
) -> Path:
    directory = recordings / recording_id
    directory.mkdir(parents=True)
    with Timeline(directory / "timeline.jsonl", clock=lambda: 0.0) as timeline:
        for event in events:
            timeline.append(**event)
    write_meta(
        directory,
        {
            "finalized": True,
            "empty": False,
            "duration_s": duration_s,
            "start_s": 0.5,
            "reason": "customer ended the session",
            "recovered": False,
            "started_at": started,
        },
    )
    return directory


def support_events(technician: str, queue: str, code: str) -> list[dict[str, Any]]:
    return [
        {"kind": "created", "technician": "", "customer": "c-1", "queue": queue},
        {"kind": "assigned", "technician": technician, "queue": queue},
        {"kind": "end", "reason": "done"},
        {
            "kind": "disposition",
            "technician": technician,
            "code": code,
            "notes": "replaced the espresso gasket",
        },
    ]


@pytest.fixture
async def library(tmp_path: Path) -> AsyncIterator[Library]:
    lib = Library(
        tmp_path / "recordings",
        tmp_path / "library.sqlite3",
        SECRET,
        retention_days=30,
        clock=lambda: NOW,
    )
    await lib.open()
    yield lib
    await lib.close()


async def test_index_reads_who_where_and_how_it_ended(library: Library) -> None:
    rec = library.recordings_dir
    write_recording(
        rec,
        "a1b2c3d4e5f60718",
        started=NOW - 100,
        events=support_events("tech-7", "billing", "resolved"),
    )
    write_recording(
        rec,
        "demo-1",
        started=NOW - 50,
        events=[
            {
                "kind": "recording",
                "state": "started",
                "room": "demo",
                "title": "Espresso 101",
                "presenter": "pat",
            },
        ],
    )
    write_recording(rec, "unfinished", started=NOW, events=[])
    (rec / "unfinished" / "meta.json").unlink()  # still recording: not listed
    assert sorted(await library.rescan()) == ["a1b2c3d4e5f60718", "demo-1"]

    page, cursor = await library.page(Filters(with_video=False))
    assert [r.id for r in page] == ["demo-1", "a1b2c3d4e5f60718"] and cursor == ""
    room, support = page
    assert (room.kind, room.staff, room.title) == ("room", "pat", "Espresso 101")
    assert (support.kind, support.staff, support.queue, support.disposition) == (
        "support",
        "tech-7",
        "billing",
        "resolved",
    )
    assert support.started == NOW - 100 and support.duration_s == 60.0
    assert len(support.key) == 22 and support.key != library.key_of("demo-1")
    assert await library.get(support.key) == support
    with pytest.raises(NotFound):
        await library.get("../../etc/passwd")
    # Nothing changed on disk: nothing is read again.
    assert await library.rescan() == []
    # By default the list holds recordings with video only.
    assert (await library.page(Filters()))[0] == []


async def test_keyset_pages_cover_everything_once_with_filters(
    library: Library,
) -> None:
    rec = library.recordings_dir
    for i in range(130):
        queue = "billing" if i % 2 else "repairs"
        write_recording(
            rec,
            f"s{i:04d}",
            started=NOW - 1000 + (i // 3),
            events=support_events(f"tech-{i % 5}", queue, "resolved"),
        )
    await library.rescan()

    seen: list[str] = []
    cursor = ""
    while True:
        page, cursor = await library.page(
            Filters(with_video=False, queue="billing"), limit=20, cursor=cursor
        )
        seen.extend(r.id for r in page)
        if not cursor:
            break
    expected = sorted(
        (f"s{i:04d}" for i in range(130) if i % 2),
        key=lambda name: (NOW - 1000 + int(name[1:]) // 3, name),
        reverse=True,
    )
    assert seen == expected  # newest first, ties by id, none twice, none missed

    found, _ = await library.page(
        Filters(with_video=False, text="tech-3 gask"), limit=200
    )
    assert {r.staff for r in found} == {"tech-3"} and len(found) == 26
    with pytest.raises(ProtocolError):
        await library.page(Filters(with_video=False), cursor="not a cursor!")


async def test_rebuilt_index_keeps_the_keys(tmp_path: Path, library: Library) -> None:
    write_recording(library.recordings_dir, "r1", started=NOW, events=[])
    await library.rescan()
    (before,), _ = await library.page(Filters(with_video=False))
    await library.close()

    library.db_path.unlink()
    again = Library(library.recordings_dir, library.db_path, SECRET)
    await again.open()
    try:
        (after,), _ = await again.page(Filters(with_video=False))
    finally:
        await again.close()
    assert after == before


async def test_previews_are_made_for_a_recording_with_video(library: Library) -> None:
    directory = library.recordings_dir / "withvideo"
    recording = Recording(directory, width=320, height=240, max_queue_items=10_000)
    feed(recording, h264_packets(4.0), audio_frames(tone(0.0, 4.0), 0.0))
    recording.close("done")

    (info,) = await library.index(["withvideo"])
    assert info.has_video
    assert (directory / "thumb.jpg").exists() and (directory / "strip.jpg").exists()
    assert (await library.get(info.key)).thumb


def test_score_is_the_weighted_share_of_what_was_rated() -> None:
    criteria = [
        Criterion("greets", 1.0),
        Criterion("diagnoses", 3.0),
        Criterion("explains", 2.0),
        Criterion("confirms identity", 1.0, critical=True),
    ]
    assert score(criteria, [1.0, 1.0, 1.0, 1.0]).score == 100.0
    # (1*1 + 3*0.5 + 2*0 + 1*1) / 7 = 3.5 / 7
    assert score(criteria, [1.0, 0.5, 0.0, 1.0]).score == 50.0
    # Not applicable leaves the criterion out of both sums: (3*1 + 1*1) / 4
    assert score(criteria, [None, 1.0, None, 1.0]).score == 100.0
    assert score(criteria, [0.0, 1.0, None, 1.0]).score == 80.0


def test_a_failed_critical_item_fails_the_whole_form() -> None:
    criteria = [Criterion("greets", 5.0), Criterion("no personal data", 1.0, True)]
    result = score(criteria, [1.0, 0.5])
    assert (result.score, result.critical_failed) == (0.0, True)
    assert not score(criteria, [0.0, 1.0]).critical_failed
    with pytest.raises(ProtocolError, match="critical"):
        parse_answers(criteria, [1.0, None])


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [{"label": "", "weight": 1}],
        [{"label": "x", "weight": 0}],
        [{"label": "x", "weight": True}],
        [{"label": "x", "weight": 1, "critical": "yes"}],
        "criteria",
    ],
)
def test_bad_forms_are_refused(raw: Any) -> None:
    with pytest.raises(ProtocolError):
        parse_criteria(raw)


@pytest.mark.parametrize("answers", [[1.0], [1.0, 0.7], [1.0, "yes"], [None, None]])
def test_bad_answers_are_refused(answers: list[Any]) -> None:
    criteria = [Criterion("a", 1.0), Criterion("b", 1.0)]
    with pytest.raises(ProtocolError):
        result = score(criteria, parse_answers(criteria, answers))
        assert result  # [None, None] parses, then has nothing rated


async def test_trend_buckets_scores_by_week_of_the_session(library: Library) -> None:
    form = await library.create_form(
        "Basics",
        [{"label": "a", "weight": 1}, {"label": "b", "weight": 1, "critical": True}],
        "admin",
    )
    ages_weeks = [0.5, 0.6, 3.5, 9.0]  # the last is outside an 8-week trend
    for n, age in enumerate(ages_weeks):
        write_recording(
            library.recordings_dir,
            f"t{n}",
            started=NOW - age * WEEK_S,
            events=support_events("tech-1", "support", "resolved"),
        )
    await library.rescan()
    page, _ = await library.page(Filters(with_video=False, staff="tech-1"))
    by_id = {r.id: r for r in page}
    await library.add_score(by_id["t0"], form, [1.0, 1.0], "trainer-1")
    await library.add_score(by_id["t1"], form, [0.0, 1.0], "trainer-1")
    await library.add_score(by_id["t2"], form, [1.0, 0.0], "trainer-1")
    await library.add_score(by_id["t3"], form, [1.0, 1.0], "trainer-1")

    weeks = await library.trend("tech-1")
    assert len(weeks) == 8
    assert [w["count"] for w in weeks] == [0, 0, 0, 0, 1, 0, 0, 2]
    assert weeks[-1]["average"] == 75.0 and weeks[4]["average"] == 0.0
    assert weeks[4]["critical_fails"] == 1 and weeks[0]["average"] is None


async def test_retention_deletes_files_and_rows_and_audits(library: Library) -> None:
    old = write_recording(
        library.recordings_dir,
        "old",
        started=NOW - 31 * 86400,
        events=support_events("tech-1", "support", "resolved"),
    )
    write_recording(
        library.recordings_dir,
        "new",
        started=NOW - 29 * 86400,
        events=support_events("tech-1", "support", "resolved"),
    )
    await library.rescan()
    (info,) = [
        r for r in (await library.page(Filters(with_video=False)))[0] if r.id == "old"
    ]
    await library.add_bookmark(info, 3.0, "look here", "trainer-1")

    assert await library.expire() == ["old"]
    assert not old.exists()
    assert [r.id for r in (await library.page(Filters(with_video=False)))[0]] == ["new"]
    with pytest.raises(NotFound):
        await library.get(info.key)
    rows = await library._on_db(
        lambda db: db.execute("SELECT COUNT(*) FROM bookmarks").fetchone()
    )
    assert rows[0] == 0
    (entry,) = await library.audit_log(recording="old")
    assert (entry["actor"], entry["action"]) == ("retention", "delete")
    # And a rescan does not bring it back.
    assert await library.rescan() == []


async def test_bookmarks_are_bounded_and_deleted_by_their_author(
    library: Library,
) -> None:
    write_recording(library.recordings_dir, "b", started=NOW, events=[])
    await library.rescan()
    (info,), _ = await library.page(Filters(with_video=False))
    mark = await library.add_bookmark(info, 12.5, "  good question  ", "ann")
    assert mark["body"] == "good question"
    with pytest.raises(ProtocolError):
        await library.add_bookmark(info, 99_999.0, "x", "ann")
    with pytest.raises(ProtocolError):
        await library.add_bookmark(info, 1.0, "x" * 5000, "ann")
    with pytest.raises(NotFound):
        await library.delete_bookmark(info, mark["id"], "bob", admin=False)
    await library.delete_bookmark(info, mark["id"], "ann", admin=False)
    assert await library.bookmarks(info) == []
    assert json.dumps(mark)


def test_library_and_scorecards_do_not_import_aiohttp() -> None:
    code = (
        "import sys, server.library, server.library_index, server.scorecard, "
        "recorder.clip, "
        "recorder.previews; print('aiohttp' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stdout.strip() == "False"


async def test_the_scan_loop_indexes_and_applies_retention(library: Library) -> None:
    old = write_recording(
        library.recordings_dir, "old", started=NOW - 40 * 86400, events=[]
    )
    write_recording(library.recordings_dir, "new", started=NOW - 86400, events=[])
    loop = asyncio.get_running_loop().create_task(library.run(0.05))
    try:
        await wait_for(lambda: not old.exists(), 5, "the old recording deleted")
        page, _ = await library.page(Filters(with_video=False))
        assert [r.id for r in page] == ["new"]
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
