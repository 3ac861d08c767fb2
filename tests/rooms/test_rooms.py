"""Demo rooms end to end: an aiortc presenter with colour cameras, aiortc viewers,
a real node on loopback. Markers (tests/synthetic.py) tell which camera a viewer
decoded, after the server composed and encoded it once for everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from recorder import VIDEO_NAME, read_meta, read_timeline
from server.rooms import Room
from tests.conftest import RunningNode, node_config, start_node
from tests.peers import wait_for
from tests.rooms.clients import Decoded, Picture, Presenter, RoomClient, Viewer
from tests.synthetic import ColourCamera, ToneTrack, marker_colour, region_colour


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    # The program at the cameras' own size: single shots pass through untouched.
    config = node_config(tmp_path / "data", program_width=640, program_height=480)
    running = await start_node(config)
    yield running
    await running.runner.cleanup()


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _presenter(
    node: RunningNode, http: aiohttp.ClientSession, title: str
) -> Presenter:
    """A presenter signed in with a login link, in the studio of a new room."""
    presenter = Presenter(node.base, http)
    target = await presenter.sign_in(node.login_link("pat", "presenter"))
    assert target.startswith("/studio")
    welcome = await presenter.studio(title=title)
    assert welcome["viewer_url"].startswith(f"{node.base}/j/")
    assert "<svg" in welcome["viewer_qr"]
    return presenter


@dataclass
class Studio:
    presenter: Presenter
    room: Room
    red: str
    green: str


async def _studio(
    node: RunningNode, http: aiohttp.ClientSession, *, right: str = ""
) -> Studio:
    """A presenter signed in, a room open, cameras 'red' and 'green' sending."""
    presenter = await _presenter(node, http, "Espresso machine demo")
    red = await presenter.publish(ColourCamera("red", right=right), "red", "Wide")
    green = await presenter.publish(ColourCamera("green"), "green", "Close-up")
    await presenter.publish(ToneTrack(440))
    room = node.node.rooms.get(presenter.room)
    await wait_for(
        lambda: room.program.live(red) and room.program.live(green), 15, "cameras"
    )
    return Studio(presenter, room, red, green)


async def _frames(picture: Picture, more: int, timeout_s: float = 10.0) -> int:
    """Wait for `more` frames beyond now; returns the index where they start."""
    start = picture.frames
    await wait_for(lambda: picture.frames >= start + more, timeout_s, "frames")
    return start


async def test_viewer_sees_the_program_and_a_switch_without_renegotiation(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    studio = await _studio(node, http)
    presenter = studio.presenter
    async with _session() as viewer_http:
        viewer = Viewer(node.base, viewer_http)
        try:
            await presenter.direct("single", studio.red)
            welcome = await viewer.enter(studio.room.viewer_url)
            assert welcome["role"] == "viewer"
            assert welcome["title"] == "Espresso machine demo"
            pc = await viewer.watch()
            picture = viewer.pictures["watch"]
            start = await _frames(picture, 10, 15)
            assert set(picture.colours_since(start)) == {"red"}
            await wait_for(lambda: viewer.audio_frames >= 25, 10, "presenter's voice")
            summary = await presenter.summary(viewers=1)
            assert [c["name"] for c in summary["cameras"]] == ["Wide", "Close-up"]
            answers = len([m for m in viewer.messages if m["type"] == "answer"])
            stream = Decoded(studio.room.feed)

            for colour in ("green", "red", "green"):
                camera = studio.green if colour == "green" else studio.red
                switched_at = picture.frames
                await presenter.direct("single", camera)
                # In the encoded stream, only frames already being composed or
                # encoded when the command was handled may show the old camera.
                replied_at = len(stream.colours)
                await wait_for(
                    lambda n=replied_at: len(stream.colours) >= n + 6, 10, "encodes"
                )
                sent = stream.colours[replied_at:]
                first = sent.index(colour)
                assert first <= 3 and set(sent[first:]) == {colour}, sent
                # The viewer goes over once and for all: old frames, then new.
                await wait_for(
                    lambda c=colour: picture.colours[-1:] == [c], 10, "the viewer"
                )
                await _frames(picture, 5)
                after = picture.colours_since(switched_at)
                first = after.index(colour)
                assert set(after[first:]) == {colour}, after

            assert pc.signalingState == "stable"
            assert len([m for m in viewer.messages if m["type"] == "answer"]) == answers
        finally:
            await viewer.close()
            await presenter.close()


async def test_program_is_encoded_once_for_every_viewer(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    studio = await _studio(node, http)
    await studio.presenter.direct("single", studio.red)
    feed = studio.room.feed
    viewers: list[Viewer] = []
    async with _session() as viewer_http:
        try:
            for _ in range(3):
                viewer = Viewer(node.base, viewer_http)
                viewers.append(viewer)
                await viewer.enter(studio.room.viewer_url)
                await viewer.watch()
            await studio.presenter.summary(viewers=3)
            for viewer in viewers:
                await _frames(viewer.pictures["watch"], 5, 15)

            encoded, composed = feed.frames_encoded, studio.room.program.frames_out
            received = [v.pictures["watch"].frames for v in viewers]
            await wait_for(
                lambda: all(
                    v.pictures["watch"].frames >= n + 30
                    for v, n in zip(viewers, received, strict=True)
                ),
                15,
                "30 more frames at every viewer",
            )
            # 90 frames reached three viewers; the feed encoded each composed frame
            # once (a frame composed while the encoder was busy may be skipped).
            encodes = feed.frames_encoded - encoded
            composes = studio.room.program.frames_out - composed
            assert encodes <= composes + 1  # +1: one composed just before
            assert encodes < 2 * 30, (encodes, received)
            assert feed.receivers == 3
            # The voice: one Opus packet per 20 ms for everyone, not per viewer.
            voice = studio.room.voice
            assert voice.receivers == 3
            assert voice.packets_out <= voice.frames_in * 2
        finally:
            for viewer in viewers:
                await viewer.close()
            await studio.presenter.close()


async def test_a_late_viewer_gets_a_keyframe_at_once(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Regular keyframes only every 10 minutes: a late viewer that decodes at all
    # was sent a keyframe forced for it.
    config = node_config(
        tmp_path / "data",
        program_width=640,
        program_height=480,
        keyframe_interval_s=600,
    )
    node = await start_node(config)
    studio = await _studio(node, http)
    await studio.presenter.direct("single", studio.green)
    async with _session() as viewer_http:
        early, late = Viewer(node.base, viewer_http), Viewer(node.base, viewer_http)
        try:
            await early.enter(studio.room.viewer_url)
            await early.watch()
            await _frames(early.pictures["watch"], 10, 15)
            forced = studio.room.feed.keyframes_forced
            # Mid-stream: the late viewer's first frame is a keyframe made for it.
            await late.enter(studio.room.viewer_url)
            await late.watch()
            await _frames(late.pictures["watch"], 5, 10)
            assert late.pictures["watch"].colours[0] == "green"
            assert studio.room.feed.keyframes_forced > forced
            # The early viewer never stopped meanwhile.
            await _frames(early.pictures["watch"], 5)
        finally:
            await early.close()
            await late.close()
            await studio.presenter.close()
            await node.runner.cleanup()


async def test_layouts_zoom_and_slates(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    studio = await _studio(node, http, right="yellow")
    presenter, red, green = studio.presenter, studio.red, studio.green
    async with _session() as viewer_http:
        viewer = Viewer(node.base, viewer_http)
        try:
            # Before anything is on air, viewers see the "Starting soon" slate.
            await viewer.enter(studio.room.viewer_url)
            await viewer.watch()
            picture = viewer.pictures["watch"]
            await _shows(picture, _is_slate, "the slate", 15)
            assert (await viewer.summary())["on_air"] is False

            await presenter.direct("pip", red, green)
            await _shows(
                picture,
                lambda f: (
                    region_colour(f, 0.05, 0.05, 0.45, 0.45) == "red"
                    and region_colour(f, 0.72, 0.72, 0.95, 0.93) == "green"
                ),
                "red with a green inset",
            )
            await presenter.direct("side", green, red)
            await _shows(
                picture,
                lambda f: (
                    region_colour(f, 0.05, 0.4, 0.2, 0.6) == "green"
                    and region_colour(f, 0.55, 0.4, 0.7, 0.6) == "red"
                ),
                "green beside red",
            )

            # Camera 'red' is red on the left, yellow on the right: zoom into each.
            await presenter.direct("single", red)
            await presenter.call("zoom", camera=red, factor=300, x=90, y=50)
            await _shows(picture, lambda f: marker_colour(f) == "yellow", "yellow")
            await presenter.call("zoom", camera=red, factor=300, x=10, y=50)
            await _shows(
                picture,
                lambda f: region_colour(f, 0.5, 0.2, 1.0, 0.8) == "red",
                "red across the frame",
            )
            await wait_for(
                lambda: red in (presenter.last("room") or {}).get("zooms", {}),
                5,
                "the zoom in the studio's summary",
            )
            assert (await presenter.summary())["zooms"][red]["factor"] == 300

            await presenter.direct("slate", slate="Back after the break")
            await _shows(picture, _is_slate, "the slate")
            assert (await viewer.summary(on_air=False))["viewers"] == 1

            # A shot naming a camera the room does not have is refused in words.
            error = await presenter.request("program", layout="single", main="nope")
            assert error["type"] == "error" and error["code"] == "not_found"
        finally:
            await viewer.close()
            await presenter.close()


async def _shows(
    picture: Picture,
    check: Callable[[av.VideoFrame], bool],
    what: str,
    timeout_s: float = 10.0,
) -> None:
    """Wait until the newest decoded frame passes `check`."""
    await wait_for(
        lambda: picture.last is not None and check(picture.last), timeout_s, what
    )


def _is_slate(frame: av.VideoFrame) -> bool:
    """The slate's dark blue-grey, far from every marker colour."""
    image = frame.to_ndarray(format="rgb24")
    corner = image[: image.shape[0] // 5, : image.shape[1] // 5].reshape(-1, 3)
    return bool(np.abs(np.median(corner, axis=0) - (24, 32, 48)).max() < 20)


async def test_on_air_camera_leaving_is_held_then_slated_then_back(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    studio = await _studio(node, http)
    presenter = studio.presenter
    await presenter.direct("single", studio.green)
    async with _session() as viewer_http:
        viewer = Viewer(node.base, viewer_http)
        try:
            await viewer.enter(studio.room.viewer_url)
            await viewer.watch()
            picture = viewer.pictures["watch"]
            await _frames(picture, 5, 15)
            await presenter.peers.pop("green").close()
            await _shows(picture, _is_slate, "the slate")
            assert not any(m["type"] == "error" for m in viewer.messages)
            # The camera comes back (same name): on air again, no one re-directs.
            await presenter.publish(ColourCamera("green"), "green", "Close-up")
            await wait_for(lambda: picture.colours[-1:] == ["green"], 10, "back")
        finally:
            await viewer.close()
            await presenter.close()


async def test_chat_questions_and_what_viewers_may_not_do(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    presenter = await _presenter(node, http, "Grinder demo")
    room = node.node.rooms.get(presenter.room)
    async with _session() as viewer_http:
        viewer, other = Viewer(node.base, viewer_http), Viewer(node.base, viewer_http)
        try:
            await viewer.enter(room.viewer_url)
            await other.enter(room.viewer_url)
            assert (await presenter.summary(viewers=2))["title"] == "Grinder demo"
            assert (await other.summary(viewers=2))["viewers"] == 2

            # Chat reaches everyone, with the name the viewer chose.
            await viewer.call("chat", text="  Hello   there ", name="Sam")
            line = await other.expect("chat_line", text="Hello there")
            assert line["name"] == "Sam" and line["role"] == "viewer"
            await presenter.expect("chat_line", text="Hello there")

            too_long = await viewer.request("chat", text="x" * 600)
            assert too_long["code"] == "too_large"
            codes = [
                (await viewer.request("chat", text=f"m{n}"))["type"] for n in range(8)
            ]
            assert "ok" in codes
            limited = await viewer.request("chat", text="one more")
            assert limited["type"] == "error" and limited["code"] == "rate_limited"

            # Viewers cannot direct, zoom, record, publish or end the room.
            for kind, fields in (
                ("program", {"layout": "slate"}),
                ("zoom", {"camera": "x"}),
                ("record", {"on": True}),
                ("camera_link", {"name": "Mine"}),
                ("room_end", {}),
                ("moderate", {"question": 1, "action": "pin"}),
            ):
                error = await other.request(kind, **fields)
                assert error["type"] == "error", kind
                assert error["code"] == "forbidden", (kind, error)
            offer = await other.request(
                "room_offer", purpose="camera", camera="c", sdp="v=0\r\n"
            )
            assert offer["code"] == "forbidden"
            wrong = await other.request("chat", room="elsewhere", text="hi")
            assert wrong["code"] == "forbidden"

            # Q&A: the presenter sees questions, a viewer only their own.
            await other.call("ask", text="Does it froth milk?", name="Kim")
            asked = await presenter.expect("questions")
            assert [q["text"] for q in asked["questions"]] == ["Does it froth milk?"]
            question = asked["questions"][0]["id"]
            assert viewer.last("questions") is None
            await presenter.call("moderate", question=question, action="answered")
            mine = await other.expect("questions")
            await wait_for(
                lambda: (other.last("questions") or mine)["questions"][0]["answered"],
                5,
                "answered",
            )
            await presenter.call("moderate", question=question, action="pin")
            await wait_for(
                lambda: (viewer.last("room") or {}).get("pinned") is not None, 5, "pin"
            )
            pinned = await viewer.summary()
            assert pinned["pinned"]["text"] == "Does it froth milk?"
            assert "cameras" not in pinned and "viewer_url" not in pinned

            # Talk to an expert: a support link into the queue, the same each time.
            expert = await viewer.call("expert")
            assert expert["type"] == "expert_link"
            again = await viewer.call("expert")
            assert again["url"] == expert["url"]
            async with viewer_http.get(
                expert["url"], headers={"Accept": "application/json"}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["queue"] == "support"

            # Leaving lowers the count everyone sees.
            await viewer.close()
            await other.summary(viewers=1)

            # The presenter ends the room: everyone is told, the link stops working.
            await presenter.call("room_end", reason="that's all")
            ended = await other.expect("ended")
            assert "that's all" in ended["reason"]
            await presenter.expect("ended")
            async with viewer_http.get(
                room.viewer_url, headers={"Accept": "application/json"}
            ) as resp:
                assert resp.status == 410
                assert (await resp.json())["code"] == "ended"
        finally:
            await viewer.close()
            await other.close()
            await presenter.close()


async def test_recording_shows_each_switch_at_its_timeline_time(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    studio = await _studio(node, http)
    presenter = studio.presenter
    try:
        await presenter.direct("single", studio.red)
        await presenter.call("record", on=True)
        await presenter.summary(recording=True)
        await wait_for(
            lambda: (studio.room._rec_dir / VIDEO_NAME).exists(), 10, "recording"
        )
        for camera in (studio.green, studio.red, studio.green):
            await _wait_s(1.0)
            await presenter.direct("single", camera)
        await _wait_s(1.0)
        await presenter.call("chat", text="Thanks for watching")
        await presenter.call("record", on=False)
        summary = await presenter.summary(recording=False)
        await wait_for(
            lambda: bool((presenter.last("room") or summary)["last_recording"]),
            10,
            "recording finalized",
        )
    finally:
        await presenter.close()

    directory = node.config.recordings_dir / studio.room._rec_dir.name
    meta = read_meta(directory)
    assert meta is not None and meta["finalized"] is True
    events = read_timeline(directory / "timeline.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "recording" and "chat" in kinds
    switches = [e for e in events if e["kind"] == "switch"]
    assert [s["main"] for s in switches] == [studio.green, studio.red, studio.green]

    with av.open(str(directory / VIDEO_NAME)) as container:
        shown = [
            (float(f.time), marker_colour(f))
            for f in container.decode(video=0)
            if f.time is not None
        ]
    colour_of = {studio.red: "red", studio.green: "green"}
    assert shown[0][1] == "red"
    for switch in switches:
        colour = colour_of[switch["main"]]
        at = float(switch["t"])
        # The first frame after the switch that shows the new camera...
        first = next(t for t, c in shown if t >= at - 0.2 and c == colour)
        assert abs(first - at) <= 0.1, (switch, first)
        # ...and from there on, until the next switch, only that camera.
        later = [c for t, c in shown if first <= t < at + 0.9]
        assert set(later) == {colour}, (switch, later)


async def _wait_s(seconds: float) -> None:
    """Let media flow for a while (the recording needs real time between switches)."""
    deadline = time.monotonic() + seconds
    await wait_for(lambda: time.monotonic() >= deadline, seconds + 1, "time")


async def test_phone_camera_link_adds_a_camera(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    presenter = await _presenter(node, http, "Phones")
    room = node.node.rooms.get(presenter.room)
    invite = await presenter.call("camera_link", name="Top")
    assert "<svg" in invite["qr_svg"]
    async with _session() as phone_http:
        phone = RoomClient(node.base, phone_http)
        try:
            welcome = await phone.enter(invite["url"])
            assert welcome["role"] == "camera"
            camera = await phone.publish(ColourCamera("blue"), name="Top")
            summary = await presenter.summary()
            await wait_for(
                lambda: any(
                    c["name"] == "Top" and c["kind"] == "phone" and c["live"]
                    for c in (presenter.last("room") or summary)["cameras"]
                ),
                15,
                "phone camera live",
            )
            camera = next(c for c in room.cameras.values() if c.name == "Top").id
            await presenter.watch("monitor")
            await presenter.direct("single", camera)
            monitor = presenter.pictures["monitor"]
            await wait_for(lambda: monitor.colours[-3:] == ["blue"] * 3, 15, "blue")
            # A phone may not direct the room.
            error = await phone.request("program", layout="single", main=camera)
            assert error["code"] == "forbidden"
        finally:
            await phone.close()
            await presenter.close()


async def test_built_in_demo_room_switches_its_synthetic_cameras(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    running = await start_node(node_config(tmp_path / "data", demo=True))
    rooms = running.node.rooms
    try:
        demo = rooms.get("demo")
        assert [c.name for c in demo.cameras.values()] == ["Wide", "Close-up"]
        # Nobody watches yet: the room composes nothing and its cameras idle,
        # drawing just often enough to stay live for the first viewer.
        wide = demo.cameras["wide"].synthetic
        assert wide is not None
        composed, drawn = demo.program.frames_out, wide.frames
        await asyncio.sleep(1.0)
        assert demo.program.frames_out == composed == 0
        assert 1 <= wide.frames - drawn <= 4
        assert demo.program.live("wide")
        presenter = Presenter(running.base, http)
        target = await presenter.sign_in(rooms.studio_url("demo"))
        assert target == "/studio?room=demo"
        async with _session() as viewer_http:
            viewer = Viewer(running.base, viewer_http)
            try:
                await viewer.enter(rooms.viewer_url("demo"))
                await viewer.watch()
                picture = viewer.pictures["watch"]
                await _frames(picture, 5, 15)
                assert _nearest_look(demo, picture) == "wide"
                await presenter.studio(room="demo")
                await presenter.direct("single", "close")
                await _frames(picture, 5)
                assert _nearest_look(demo, picture) == "close"
                # The built-in room outlives its presenters.
                error = await presenter.request("room_end")
                assert error["code"] == "wrong_state"
            finally:
                await viewer.close()
                await presenter.close()
    finally:
        await running.runner.cleanup()
    assert "demo" not in rooms.rooms


def _nearest_look(room: Room, picture: Picture) -> str:
    """Which synthetic camera drew the newest frame (mean difference of pixels)."""
    assert picture.last is not None
    got = picture.last.to_ndarray(format="rgb24").astype(np.int16)
    best: dict[str, float] = {}
    for camera in room.cameras.values():
        assert camera.synthetic is not None
        drawn = camera.synthetic.draw(0.0).to_ndarray(format="bgr24")[..., ::-1]
        best[camera.id] = float(np.abs(got - drawn.astype(np.int16)).mean())
    return min(best, key=lambda c: best[c])


async def test_studio_is_for_presenters_and_bad_offers_are_refused_in_words(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    presenter = await _presenter(node, http, "Refusals")
    async with _session() as tech_http:
        technician = Presenter(node.base, tech_http)
        try:
            await technician.sign_in(node.login_link("tess", "technician"))
            async with tech_http.get(f"{node.base}/studio") as resp:
                assert resp.status == 403
            await technician.connect_ws()
            refused = await technician.request("studio", title="Mine")
            assert refused["code"] == "forbidden"
            unknown = await technician.request("studio", room="nope")
            assert unknown["code"] == "forbidden"
            assert len(node.node.rooms.rooms) == 1

            peers = await node.metric("peer_connections")
            for sdp, code in (("hello", "bad_sdp"), ("v=0\r\n", "bad_sdp")):
                error = await presenter.request(
                    "room_offer", purpose="camera", camera="x", sdp=sdp
                )
                assert error["code"] == code, error
            assert await node.metric("peer_connections") == peers
            assert node.node.rooms.get(presenter.room).cameras == {}
            bad = await presenter.request(
                "room_offer", purpose="camera", camera="a b", sdp="v=0\r\n"
            )
            assert bad["code"] == "bad_message"
            wrong = await presenter.request("room_offer", purpose="stage", sdp="v=0")
            assert wrong["code"] == "bad_message"
            # The room goes on.
            assert (await presenter.call("chat", text="still here"))["type"] == "ok"
        finally:
            await technician.close()
            await presenter.close()
