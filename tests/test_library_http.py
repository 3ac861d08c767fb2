"""The library over HTTP, on real recordings made through the server.

One node serves the whole module. It records one support session (an aiortc
customer and technician, ~5 s) and one demo-room recording with a camera switch
(the built-in synthetic cameras); every test reads those through the library's
routes and decodes what it gets with PyAV.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
import pytest_asyncio
from yarl import URL

from recorder import read_timeline
from server.library import Filters
from server.links import Kind
from server.rooms import DEMO_ROOM
from tests.conftest import RunningNode, node_config, start_node
from tests.peers import wait_for
from tests.recorded import jar, record_room, record_support_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN = {"Authorization": "Bearer test-admin-key"}


@dataclass
class Recorded:
    node: RunningNode
    trainer: aiohttp.ClientSession
    session: str
    session_s: float
    room: str
    customer_token: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recorded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Recorded]:
    config = node_config(tmp_path_factory.mktemp("library") / "data")
    # No periodic scan: the session close hook indexes the support session, and
    # one explicit rescan (what the periodic loop runs) finds the room recording
    # and the disposition added after the end.
    node = await start_node(config.replace(library_scan_s=3600))
    library = node.node.library
    trainer = jar()
    try:
        session, seconds, token = await record_support_session(node)
        deadline = time.monotonic() + 15
        while not [r for r in (await library.page(Filters()))[0] if r.thumb]:
            assert time.monotonic() < deadline, "the hook did not index the session"
            await asyncio.sleep(0.05)
        room = await record_room(node)
        assert room in await library.rescan()  # previews made before it returns
        async with trainer.get(node.login_link("tina", "trainer")) as resp:
            assert resp.status == 200 and resp.url.path == "/library"
        yield Recorded(node, trainer, session, seconds, room, token)
    finally:
        await trainer.close()
        await node.runner.cleanup()


async def _listed(rec: Recorded, **query: str) -> list[dict[str, Any]]:
    async with rec.trainer.get(
        f"{rec.node.base}/api/library/recordings", params=query
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    found: list[dict[str, Any]] = body["recordings"]
    return found


async def _detail(rec: Recorded, recording_id: str) -> dict[str, Any]:
    (item,) = [r for r in await _listed(rec) if r["id"] == recording_id]
    async with rec.trainer.get(
        f"{rec.node.base}/api/library/recordings/{item['key']}"
    ) as resp:
        assert resp.status == 200
        detail: dict[str, Any] = await resp.json()
    return detail


async def test_library_lists_the_recordings_with_their_metadata(
    recorded: Recorded,
) -> None:
    listed = await _listed(recorded)
    assert [r["id"] for r in listed] == [recorded.room, recorded.session]  # newest

    room, support = listed
    assert (support["kind"], support["staff"], support["queue"]) == (
        "support",
        "tech-1",
        "",
    )
    assert support["disposition"] == "resolved"
    directory = recorded.node.config.recordings_dir / recorded.session
    meta = json.loads((directory / "meta.json").read_text())
    with av.open(str(directory / "video.mp4")) as container:
        last = [float(f.time or 0) for f in container.decode(video=0)][-1]
    assert support["duration_s"] == meta["duration_s"] > last > 1.0
    assert support["started"] == meta["started_at"]
    assert time.time() - 120 < support["started"] < time.time() - recorded.session_s
    assert support["has_video"] and support["thumbnail"] and support["video"]
    assert recorded.session not in support["video"]  # the URL has the key only
    assert (room["kind"], room["staff"], room["title"]) == (
        "room",
        "Tapline",
        "Espresso machine demo",
    )
    assert 3.0 < room["duration_s"] < 5.0
    assert [r["id"] for r in await _listed(recorded, kind="room")] == [recorded.room]
    assert [r["id"] for r in await _listed(recorded, q="espresso")] == [recorded.room]
    assert [r["id"] for r in await _listed(recorded, q="gask")] == [recorded.session]
    today = time.strftime("%Y-%m-%d", time.gmtime(support["started"]))
    day_before = time.strftime("%Y-%m-%d", time.gmtime(support["started"] - 86400))
    assert len(await _listed(recorded, since=today, until=today)) == 2
    assert await _listed(recorded, until=day_before) == []
    async with recorded.trainer.get(
        f"{recorded.node.base}/api/library/recordings", params={"since": "tomorrow"}
    ) as r:
        assert r.status == 400
    assert [r["id"] for r in await _listed(recorded, staff="tech-1")] == [
        recorded.session
    ]
    async with recorded.trainer.get(f"{recorded.node.base}{support['thumbnail']}") as r:
        assert r.status == 200 and r.content_type == "image/jpeg"


class _HttpRanges(io.RawIOBase):
    """A remote file read only with Range requests, for PyAV to open and seek."""

    def __init__(self, url: str, cookie: str) -> None:
        super().__init__()
        self.url, self.cookie = url, cookie
        self.position = 0
        self.requests = 0
        request = urllib.request.Request(url, method="HEAD")
        request.add_header("Cookie", cookie)
        with urllib.request.urlopen(request) as resp:
            self.size = int(resp.headers["Content-Length"])
            assert resp.headers["Accept-Ranges"] == "bytes"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}
        self.position = base[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.position >= self.size or not len(view):
            return 0
        last = min(self.size, self.position + len(view)) - 1
        request = urllib.request.Request(self.url)
        request.add_header("Cookie", self.cookie)
        request.add_header("Range", f"bytes={self.position}-{last}")
        with urllib.request.urlopen(request) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == (
                f"bytes {self.position}-{last}/{self.size}"
            )
            data = resp.read()
        self.requests += 1
        view[: len(data)] = data
        self.position += len(data)
        return len(data)


def _decode_at(ranges: _HttpRanges, seconds: list[float]) -> list[float]:
    """Open through ranges, seek to each time, return the first frame's time."""
    found = []
    with av.open(ranges, "r") as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        for at in seconds:
            container.seek(round(at / stream.time_base), stream=stream)
            frame = next(container.decode(stream))
            found.append(float(frame.time or 0.0))
    return found


def _keyframes(path: Path) -> list[Fraction]:
    """Times of the video's keyframes, exactly, from the file itself."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            packet.pts * packet.time_base
            for packet in container.demux(stream)
            if packet.is_keyframe and packet.pts is not None and packet.time_base
        ]


def _keyframe_before(keyframes: list[Fraction], at: float) -> float:
    # Exact: a keyframe a fraction of a millisecond after `at` is not before it
    # (seeking to `at` lands on the one before).
    return float(max(k for k in keyframes if k <= Fraction(at)))


def _cookie(rec: Recorded) -> str:
    cookies = rec.trainer.cookie_jar.filter_cookies(URL(rec.node.base))
    return "; ".join(f"{k}={v.value}" for k, v in cookies.items())


async def test_byte_ranges_decode_with_pyav_from_any_point(recorded: Recorded) -> None:
    detail = await _detail(recorded, recorded.session)
    url = f"{recorded.node.base}{detail['video']}"
    ranges = await asyncio.to_thread(_HttpRanges, url, _cookie(recorded))
    asked = [4.0, 0.5, 2.5]
    got = await asyncio.to_thread(_decode_at, ranges, asked)
    path = recorded.node.config.recordings_dir / recorded.session / "video.mp4"
    keyframes = _keyframes(path)
    for at, frame_s in zip(asked, got, strict=True):
        assert frame_s == pytest.approx(_keyframe_before(keyframes, at), abs=0.002)
    assert ranges.requests > 1

    whole = path.read_bytes()
    async with recorded.trainer.get(url, headers={"Range": "bytes=1000-1999"}) as r:
        assert r.status == 206 and await r.read() == whole[1000:2000]
    async with recorded.trainer.get(url, headers={"Range": "bytes=-100"}) as r:
        assert r.status == 206 and await r.read() == whole[-100:]
    for bad in (
        "bytes=500-100",
        "bytes=0-1,5-9",
        f"bytes={len(whole)}-",
        "bytes=-0",
        "items=0-1",
        "bytes=" + "9" * 40 + "-",
    ):
        async with recorded.trainer.get(url, headers={"Range": bad}) as r:
            assert r.status == 416, bad
            assert r.headers["Content-Range"] == f"bytes */{len(whole)}"


async def test_camera_switch_event_matches_the_picture(recorded: Recorded) -> None:
    detail = await _detail(recorded, recorded.room)
    (switch,) = [e for e in detail["timeline"] if e["kind"] == "switch"]
    at = switch["t"] - detail["start_s"]

    path = recorded.node.config.recordings_dir / recorded.room / "video.mp4"
    with av.open(str(path)) as container:
        frames = [
            (float(f.time or 0.0), f.to_ndarray(format="gray").astype(np.int16))
            for f in container.decode(video=0)
        ]
    # Each frame is nearer the wide shot (at 1 s) or the close-up (the last frame).
    wide = next(image for t, image in frames if t >= 1.0)
    close = frames[-1][1]
    assert float(np.abs(wide - close).mean()) > 10
    shows_close = [
        float(np.abs(image - close).mean()) < float(np.abs(image - wide).mean())
        for _, image in frames
    ]
    first_close = shows_close.index(True)
    assert all(shows_close[first_close:]) and not any(shows_close[30:first_close])
    changed_at = frames[first_close][0]
    assert abs(changed_at - at) <= 0.1, (changed_at, at)


async def test_clip_export_decodes_and_starts_within_one_gop(
    recorded: Recorded,
) -> None:
    detail = await _detail(recorded, recorded.session)
    url = f"{recorded.node.base}/library/media/{detail['key']}/clip.mp4"
    async with recorded.trainer.get(url, params={"start": "2.3", "end": "4"}) as r:
        assert r.status == 200 and r.content_type == "video/mp4"
        data = await r.read()
        clip_start = float(r.headers["X-Clip-Start"])
    path = recorded.node.config.recordings_dir / recorded.session / "video.mp4"
    # The clip starts at the last keyframe before the asked time: within one GOP.
    assert clip_start == pytest.approx(
        _keyframe_before(_keyframes(path), 2.3), abs=0.002
    )

    with av.open(io.BytesIO(data), "r") as container:
        frames = list(container.decode(video=0))
        assert container.streams.audio
    assert frames[0].key_frame and float(frames[0].time or 0) < 0.05
    # Every frame the recording shows from the clip's start up to 4 s, no other.
    with av.open(str(path)) as container:
        source = [
            float(f.time or 0)
            for f in container.decode(video=0)
            if clip_start - 0.001 <= float(f.time or 0) < 4.0
        ]
    clip_times = [float(f.time or 0) + clip_start for f in frames]
    assert clip_times == pytest.approx(source, abs=0.002)
    exports = recorded.node.config.data_dir / "exports"
    await wait_for(lambda: not list(exports.iterdir()), 5, "the export removed")

    async with recorded.trainer.get(url, params={"start": "5", "end": "1"}) as r:
        assert r.status == 400
    async with recorded.trainer.get(url, params={"start": "x", "end": "1"}) as r:
        assert r.status == 400
    async with recorded.trainer.get(url, params={"start": "500", "end": "501"}) as r:
        assert r.status == 400  # past the end: nothing to cut
        assert "video" in (await r.json())["reason"]


async def test_json_export_has_the_timeline_and_is_audited(recorded: Recorded) -> None:
    detail = await _detail(recorded, recorded.session)
    url = f"{recorded.node.base}/api/library/recordings/{detail['key']}/export.json"
    async with recorded.trainer.get(url) as r:
        assert r.status == 200
        assert "attachment" in r.headers["Content-Disposition"]
        exported = await r.json()
    assert exported["id"] == recorded.session
    assert exported["timeline"][0]["kind"] == "created"

    async with (
        aiohttp.ClientSession() as admin,
        admin.get(f"{recorded.node.base}/api/library/audit", headers=ADMIN) as r,
    ):
        entries = (await r.json())["entries"]
    mine = {
        (e["actor"], e["action"]) for e in entries if e["recording"] == detail["id"]
    }
    assert ("tina", "export") in mine


async def test_bookmarks_scores_and_trend(recorded: Recorded) -> None:
    base = recorded.node.base
    async with aiohttp.ClientSession() as admin:
        form = {
            "name": "Basics",
            "criteria": [
                {"label": "Greets", "weight": 1},
                {"label": "Finds the fault", "weight": 3},
                {"label": "No personal data shown", "weight": 1, "critical": True},
            ],
        }
        async with admin.post(
            f"{base}/api/library/forms", json=form, headers=ADMIN
        ) as r:
            assert r.status == 201
            form_id = (await r.json())["id"]
    async with recorded.trainer.post(
        f"{base}/api/library/forms", json=form, headers={"Origin": base}
    ) as r:
        assert r.status == 403  # a trainer scores; an admin defines forms

    detail = await _detail(recorded, recorded.session)
    api = f"{base}/api/library/recordings/{detail['key']}"
    origin = {"Origin": base}
    async with recorded.trainer.post(
        f"{api}/scores", json={"form": form_id, "answers": [1, 0.5, 1]}, headers=origin
    ) as r:
        assert r.status == 201
        assert (await r.json())["score"] == 70.0  # (1*1 + 3*0.5 + 1*1) / 5
    async with recorded.trainer.post(
        f"{api}/scores", json={"form": form_id, "answers": [1, 1, 0]}, headers=origin
    ) as r:
        scored = await r.json()
        assert (scored["score"], scored["critical_failed"]) == (0.0, True)
    async with recorded.trainer.post(
        f"{api}/bookmarks", json={"t": 1.5, "body": "nice catch"}, headers=origin
    ) as r:
        assert r.status == 201
    async with recorded.trainer.post(
        f"{api}/bookmarks", json={"t": 1.5, "body": "no origin"}
    ) as r:
        assert r.status == 403  # cookie writes need our Origin

    detail = await _detail(recorded, recorded.session)
    assert [(b["t"], b["body"]) for b in detail["bookmarks"]] == [(1.5, "nice catch")]
    assert [s["score"] for s in detail["scores"]] == [70.0, 0.0]
    async with recorded.trainer.get(
        f"{base}/api/library/trend", params={"technician": "tech-1"}
    ) as r:
        weeks = (await r.json())["weeks"]
    assert len(weeks) == 8
    assert (weeks[-1]["count"], weeks[-1]["average"], weeks[-1]["critical_fails"]) == (
        2,
        35.0,
        1,
    )


async def test_customer_viewer_and_technician_get_403_on_every_route(
    recorded: Recorded,
) -> None:
    node = recorded.node
    detail = await _detail(recorded, recorded.session)
    key = detail["key"]
    viewer, _ = node.node.signer.sign(
        Kind.PARTICIPANT, 600, room=DEMO_ROOM, role="viewer", name="v"
    )
    technician, _ = node.node.signer.sign(
        Kind.STAFF, 600, name="tech-1", role="technician"
    )
    routes = [
        ("GET", "/library"),
        ("GET", f"/player/{key}"),
        ("GET", f"/library/media/{key}/video.mp4"),
        ("GET", f"/library/media/{key}/thumb.jpg"),
        ("GET", f"/library/media/{key}/strip.jpg"),
        ("GET", f"/library/media/{key}/snapshots/a.jpg"),
        ("GET", f"/library/media/{key}/clip.mp4?start=0&end=1"),
        ("GET", "/api/library/recordings"),
        ("GET", f"/api/library/recordings/{key}"),
        ("DELETE", f"/api/library/recordings/{key}"),
        ("GET", f"/api/library/recordings/{key}/export.json"),
        ("POST", f"/api/library/recordings/{key}/bookmarks"),
        ("DELETE", f"/api/library/recordings/{key}/bookmarks/1"),
        ("POST", f"/api/library/recordings/{key}/scores"),
        ("GET", "/api/library/forms"),
        ("POST", "/api/library/forms"),
        ("GET", "/api/library/trend"),
        ("GET", "/api/library/audit"),
        ("POST", "/api/library/rescan"),
    ]
    for method, path in routes:
        url = f"{node.base}{path}"
        for token in (recorded.customer_token, viewer):
            async with aiohttp.ClientSession() as http:
                for ask in (
                    {"headers": {"Authorization": f"Bearer {token}"}},
                    {"cookies": {"tapline_staff": token}},
                    {"params": {"token": token}},
                ):
                    async with http.request(method, url, json={}, **ask) as r:  # type: ignore[arg-type]
                        assert r.status == 403, (method, path, ask)
        staff = {"tapline_staff": technician}
        async with (
            aiohttp.ClientSession(cookies=staff) as http,
            http.request(method, url, headers={"Origin": node.base}) as r,
        ):
            assert r.status == 403, (method, path, "technician")
        async with aiohttp.ClientSession() as http, http.request(method, url) as r:
            assert r.status == 401, (method, path, "nobody")
    # And the recording is untouched.
    assert (await _detail(recorded, recorded.session))["has_video"]


async def test_unknown_keys_and_traversal_are_refused(recorded: Recorded) -> None:
    detail = await _detail(recorded, recorded.session)
    base, key = recorded.node.base, detail["key"]
    for path in (
        f"/library/media/{recorded.session}/video.mp4",  # the id is not the key
        f"/library/media/{key}/snapshots/..%2Fmeta.json",
        f"/library/media/{key}/snapshots/.hidden.jpg",
        f"/library/media/{key}/../{key}/meta.json",
        f"/api/library/recordings/{key[:-1]}x",
        "/api/library/recordings/..%2F..%2Fsecret.key",
    ):
        async with recorded.trainer.get(f"{base}{path}") as r:
            assert r.status == 404, path


async def test_snapshot_gallery_lists_snapshots_at_their_times(
    recorded: Recorded,
) -> None:
    # The technician took a snapshot ~2.5 s into the recorded session (tools):
    # the gallery lists it at its timeline time and serves its bytes.
    directory = recorded.node.config.recordings_dir / recorded.session
    (event,) = [
        e
        for e in read_timeline(directory / "timeline.jsonl")
        if e["kind"] == "snapshot"
    ]
    png = (directory / "files" / event["file"]).read_bytes()
    assert png.startswith(b"\x89PNG")
    (directory / "files" / "notes.txt").write_text("not a picture")
    (directory / "secret.jpg").write_bytes(png)

    detail = await _detail(recorded, recorded.session)
    (snap,) = detail["snapshots"]
    assert (snap["file"], snap["t"]) == (event["file"], event["t"])
    assert 1.5 < snap["t"] < 5.0
    async with recorded.trainer.get(f"{recorded.node.base}{snap['url']}") as r:
        assert r.status == 200 and await r.read() == png
    for name in ("notes.txt", "..%2Fsecret.jpg", "%2E%2E%2Fsecret.jpg"):
        url = f"{recorded.node.base}/library/media/{detail['key']}/snapshots/{name}"
        async with recorded.trainer.get(url) as r:
            assert r.status == 404, name


async def test_retention_deletes_files_and_rows_last(recorded: Recorded) -> None:
    library = recorded.node.node.library
    directory = recorded.node.config.recordings_dir / recorded.session
    base = recorded.node.base
    key = (await _detail(recorded, recorded.session))["key"]
    form = {"name": "Kept", "criteria": [{"label": "Greets"}]}
    async with aiohttp.ClientSession(headers=ADMIN) as admin:
        async with admin.post(f"{base}/api/library/forms", json=form) as r:
            form_id = (await r.json())["id"]
        score = {"form": form_id, "answers": [1]}
        scores = f"{base}/api/library/recordings/{key}/scores"
        async with admin.post(scores, json=score) as r:
            assert r.status == 201
    library.retention_days = 1e-6  # everything here is older than 0.09 s
    try:
        deleted = await library.expire()
    finally:
        library.retention_days = 0
    assert set(deleted) == {recorded.session, recorded.room}
    assert not directory.exists()
    assert await _listed(recorded) == []
    assert await library.rescan(full=True) == []
    async with (
        aiohttp.ClientSession() as admin,
        admin.get(f"{recorded.node.base}/api/library/audit", headers=ADMIN) as r,
    ):
        entries = (await r.json())["entries"]
    assert {e["recording"] for e in entries if e["action"] == "delete"} == set(deleted)
    # Scores outlive their recordings, and so does the way to their trend.
    async with recorded.trainer.get(f"{base}/api/library/trend") as r:
        assert "tech-1" in (await r.json())["technicians"]
    async with recorded.trainer.get(
        f"{base}/api/library/trend", params={"technician": "tech-1", "weeks": "1"}
    ) as r:
        assert (await r.json())["weeks"][-1]["count"] >= 1
    assert Path(recorded.node.config.data_dir / "library.sqlite3").exists()
