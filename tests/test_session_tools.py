"""Technician tools round trips with aiortc peers through a real node, recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
import pytest
from aiortc.mediastreams import VideoStreamTrack

from server.tools import frame_png
from tests.conftest import RunningNode, node_config, start_node
from tests.peers import Customer, Technician, wait_for

Image = np.ndarray[Any, Any]

_BITS = 12
_BLOCK = 40


def counting_image(n: int, width: int = 640, height: int = 480) -> Image:
    """A frame that carries its number: 12 black/white blocks over a gradient."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.linspace(40, 200, width, dtype=np.uint8)[None, :, None]
    image[:, :, 2] = 90
    for bit in range(_BITS):
        on = (n >> bit) & 1
        x = bit * (_BLOCK + 8) + 8
        image[8 : 8 + _BLOCK, x : x + _BLOCK] = 255 if on else 0
    return image


def read_number(image: Image) -> int:
    n = 0
    for bit in range(_BITS):
        x = bit * (_BLOCK + 8) + 8
        block = image[16:_BLOCK, x + 8 : x + _BLOCK - 8]
        if float(block.mean()) > 128:
            n |= 1 << bit
    return n


class CountingCamera(VideoStreamTrack):
    """Frames numbered in their pixels; `hold()` stops sending new ones."""

    def __init__(self) -> None:
        super().__init__()
        self.width, self.height = 640, 480
        self.sent = 0
        self.running = asyncio.Event()
        self.running.set()

    async def recv(self) -> av.VideoFrame:
        await self.running.wait()
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(counting_image(self.sent), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


class HalvesCamera(VideoStreamTrack):
    """Left half blue, right half green (RGB)."""

    width, height = 640, 480

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = np.empty((self.height, self.width, 3), np.uint8)
        image[:, : self.width // 2] = (30, 60, 220)
        image[:, self.width // 2 :] = (30, 200, 40)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def live(
    node: RunningNode,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
    camera: VideoStreamTrack | None = None,
    colour: str = "red",
) -> tuple[Customer, Technician, str]:
    technician = Technician(node.base, tech_http)
    await technician.sign_in(node.login_link("tech-1"))
    await technician.join()
    customer = Customer(node.base, http, colour=colour)
    if camera is not None:
        customer.camera = camera  # type: ignore[assignment]
    session = await customer.join(node.direct_link("tech-1"))
    await technician.expect("session", session=session)
    await technician.take(session)
    await customer.expect("session", state="live", timeout_s=15)
    await wait_for(lambda: technician.video.frames >= 10, 15, "technician frames")
    return customer, technician, session


async def ask(client: Customer | Technician, ref: str, **fields: Any) -> dict[str, Any]:
    """Send a message with `ref` and return the reply (ok or error)."""
    await client.send(ref=ref, **fields)
    await wait_for(
        lambda: any(m.get("ref") == ref for m in client.messages), 10, f"reply {ref}"
    )
    return next(m for m in client.messages if m.get("ref") == ref)


def events(node: RunningNode, session: str) -> list[dict[str, Any]]:
    path = node.config.recordings_dir / session / "timeline.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def decode_png(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a PNG"
    rgb: Image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return rgb


async def test_camera_requests_reach_the_phone_and_answers_reach_the_console(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer, technician, session = await live(node, http, tech_http)
    try:
        reply = await ask(
            technician,
            "c1",
            type="camera_control",
            session=session,
            action="facing",
            facing="user",
        )
        assert reply["type"] == "ok"
        asked = await customer.expect("camera_control", request=reply["request"])
        assert (asked["action"], asked["facing"]) == ("facing", "user")

        # The phone switched: the console hears the outcome.
        await customer.send(
            type="camera_result",
            session=session,
            request=asked["request"],
            action="facing",
            ok=True,
            facing="user",
        )
        result = await technician.expect("camera_result", request=asked["request"])
        assert result["ok"] is True and result["facing"] == "user"
        assert result["digital_zoom"] is False

        # A phone without optical zoom: the console is offered digital zoom.
        reply = await ask(
            technician, "c2", type="camera_control", session=session, action="zoom",
            zoom=300,
        )  # fmt: skip
        asked = await customer.expect("camera_control", request=reply["request"])
        await customer.send(
            type="camera_result", session=session, request=asked["request"],
            action="zoom", ok=False, unsupported=True,
            reason="This camera cannot zoom.",
        )  # fmt: skip
        result = await technician.expect("camera_result", request=asked["request"])
        assert result["unsupported"] is True and result["digital_zoom"] is True

        # The customer cannot steer, nor answer a request never made.
        refused = await ask(
            customer, "c3", type="camera_control", session=session, action="torch"
        )
        assert refused["code"] == "forbidden"
        stale = await ask(
            customer, "c4", type="camera_result", session=session, request="nope",
            action="torch", ok=True,
        )  # fmt: skip
        assert stale["code"] == "wrong_state"
    finally:
        await customer.close()
        await technician.close()
    kinds = [e["kind"] for e in events(node, session)]
    assert kinds.count("camera_request") == 2 and kinds.count("camera_result") == 2


async def test_digital_zoom_crops_on_the_server(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer, technician, session = await live(
        node, http, tech_http, camera=HalvesCamera()
    )

    def centre() -> tuple[int, ...]:
        frame = technician.video.last
        assert frame is not None
        image = frame.to_ndarray(format="rgb24")
        return tuple(int(v) for v in image[240, 320])

    try:
        reply = await ask(
            technician, "z1", type="digital_zoom", session=session, factor=400,
            x=12, y=50,
        )  # fmt: skip
        assert reply["type"] == "ok"
        # Zoomed into the left quarter: the whole picture is the blue half, and
        # the picture keeps its size.
        await wait_for(lambda: centre()[2] > 180 and centre()[1] < 120, 10, "blue")
        assert technician.video.sizes == {(640, 480)}
        state = await technician.expect("tools", session=session)
        assert state["zoom"] == {"factor": 400, "x": 12, "y": 50}
        # The live pointer: burned into the technician's picture, and sent to the
        # customer where it falls on their whole (unzoomed) picture.
        await technician.send(type="pointer", session=session, x=5000, y=5000)
        pointed = await customer.expect("pointer", session=session)
        assert (pointed["x"], pointed["y"], pointed["on"]) == (0.125, 0.5, True)
        await wait_for(lambda: centre()[0] > 200 and centre()[1] > 170, 10, "pointer")
        await technician.send(type="pointer", session=session, on=False)
        await customer.expect("pointer", on=False)
        await wait_for(lambda: centre()[2] > 180, 10, "pointer gone")
        too_far = await ask(
            technician, "z2", type="digital_zoom", session=session, factor=900
        )
        assert too_far["code"] == "bad_message"
        await ask(technician, "z3", type="digital_zoom", session=session, factor=100)
        await wait_for(lambda: centre()[1] > 150, 10, "the green half back")
    finally:
        await customer.close()
        await technician.close()
    pointer = [e for e in events(node, session) if e["kind"] == "pointer"]
    assert [(e["by"], e["shown"]) for e in pointer] == [
        ("technician:tech-1", True),
        ("technician:tech-1", False),
    ]


async def test_freeze_shows_both_sides_the_source_frame_and_strokes_are_recorded(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    camera = CountingCamera()
    customer, technician, session = await live(node, http, tech_http, camera=camera)
    try:
        await wait_for(lambda: technician.video.frames >= 40, 10, "1 s recorded")
        sent_before = camera.sent
        reply = await ask(technician, "f1", type="freeze", session=session)
        sent_after = camera.sent
        still = reply["file"]
        assert (still["width"], still["height"]) == (640, 480)
        shown = await customer.expect("tools", session=session, timeout_s=5)
        await wait_for(
            lambda: (customer.last("tools") or {}).get("frozen") is not None, 5, "still"
        )
        shown = customer.last("tools") or shown
        assert shown["frozen"]["url"] == still["url"]

        # Both sides fetch the same still: the technician with the staff cookie,
        # the customer with their participant token.
        async with tech_http.get(node.base + still["url"]) as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
            staff_png = await resp.read()
        bearer = {"Authorization": f"Bearer {customer.boot['token']}"}
        async with http.get(node.base + still["url"], headers=bearer) as resp:
            assert resp.status == 200
            assert await resp.read() == staff_png
        async with (
            aiohttp.ClientSession() as stranger,
            stranger.get(node.base + still["url"]) as resp,
        ):
            assert resp.status == 401

        # The still is a frame the camera sent around the freeze, within the
        # tolerance of the uplink's encoding.
        image = decode_png(staff_png)
        number = read_number(image)
        assert sent_before - 30 <= number <= sent_after, (number, sent_before)
        error = np.abs(image.astype(int) - counting_image(number).astype(int))
        assert float(error.mean()) < 6.0, float(error.mean())

        # Annotate: each stroke reaches the customer at once.
        arrow = [1000, 5000, 9000, 5000]
        reply = await ask(
            technician, "s1", type="stroke", session=session, shape="arrow",
            points=arrow, colour="yellow",
        )  # fmt: skip
        stroke = await customer.expect("stroke", session=session)
        assert stroke["stroke"]["id"] == reply["id"]
        assert stroke["stroke"]["points"] == [0.1, 0.5, 0.9, 0.5]
        marker = await ask(
            technician, "s2", type="stroke", session=session, shape="marker",
            points=[5000, 2500],
        )  # fmt: skip
        assert marker["type"] == "ok"
        undo = await ask(technician, "s3", type="undo", session=session)
        assert undo["removed"] == [marker["id"]]
        bad = await ask(
            technician, "s4", type="stroke", session=session, shape="circle",
            points=[1, 2, 3],
        )  # fmt: skip
        assert bad["code"] == "bad_message"
        drawn = camera.sent
        await wait_for(lambda: camera.sent > drawn + 45, 10, "1.5 s annotated")
        await ask(technician, "u1", type="unfreeze", session=session)
        await wait_for(lambda: camera.sent > drawn + 90, 10, "1.5 s live")
        late = await ask(
            technician, "s5", type="stroke", session=session, shape="marker",
            points=[5000, 2500],
        )  # fmt: skip
        assert late["code"] == "wrong_state"
        await customer.send(type="end", session=session)
        await technician.expect("ended", session=session)
    finally:
        await customer.close()
        await technician.close()

    timeline = events(node, session)
    by_kind = {e["kind"]: e for e in reversed(timeline)}  # the first of each
    assert by_kind["freeze"]["file"] == still["name"]
    assert by_kind["stroke"]["stroke"]["shape"] == "arrow"
    assert by_kind["unfreeze"]["strokes"][0]["colour"] == "yellow"
    assert by_kind["unfreeze"]["annotated"].startswith("annotated-")

    directory = node.config.recordings_dir / session
    start = json.loads((directory / "meta.json").read_text())["start_s"]
    drawn_at = by_kind["stroke"]["t"] - start
    gone_at = by_kind["unfreeze"]["t"] - start
    with av.open(str(directory / "video.mp4")) as container:
        frames = [
            (float(f.time), f.to_ndarray(format="rgb24"))
            for f in container.decode(video=0)
        ]

    def yellow_on_the_arrow(image: Image) -> float:
        """Share of the arrow's columns with a yellow pixel on its line."""
        band = image[230:250, 160:480].astype(int)
        yellow = (band[..., 0] > 200) & (band[..., 1] > 170) & (band[..., 2] < 90)
        return float(yellow.any(axis=0).mean())

    during = [
        yellow_on_the_arrow(i) for t, i in frames if drawn_at + 0.3 < t < gone_at - 0.1
    ]
    before = [yellow_on_the_arrow(i) for t, i in frames if t < drawn_at - 0.3]
    after = [yellow_on_the_arrow(i) for t, i in frames if t > gone_at + 0.5]
    # The still is re-sent at 15 fps; a loaded machine drops some, so ask for a few.
    assert len(during) >= 5 and before and after
    assert min(during) > 0.9, "the arrow is missing while it was shown"
    assert max(before) < 0.05 and max(after) < 0.05, "the arrow outlived its still"


async def test_snapshot_is_the_decoded_frame_losslessly(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    camera = CountingCamera()
    customer, technician, session = await live(node, http, tech_http, camera=camera)
    try:
        stage = node.node.desk.sessions[session].tools.stage
        # Hold the camera so that the server's newest decoded frame stays put.
        camera.running.clear()
        seen: list[object] = []

        def settled() -> bool:
            seen.append(stage.latest)
            return len(seen) > 15 and all(f is seen[-1] for f in seen[-15:])

        await wait_for(settled, 5, "the newest frame to stay put")
        decoded = stage.latest
        assert decoded is not None
        reply = await ask(technician, "p1", type="snapshot", session=session)
        assert stage.latest is decoded, "a frame arrived during the snapshot"
        snap = reply["file"]
        assert snap["kind"] == "snapshot" and snap["name"].endswith(".png")
        gallery = await technician.expect("files", added=snap["name"])
        assert [f["name"] for f in gallery["files"]] == [snap["name"]]
        async with tech_http.get(node.base + snap["url"] + "?download=1") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Disposition"].startswith("attachment")
            png = await resp.read()
        assert np.array_equal(decode_png(png), decoded.to_ndarray(format="rgb24"))
        assert png == frame_png(decoded)
        path = node.config.recordings_dir / session / "files" / snap["name"]
        assert path.read_bytes() == png

        # Snapshots are staff-only: the customer's token does not fetch them.
        bearer = {"Authorization": f"Bearer {customer.boot['token']}"}
        async with http.get(node.base + snap["url"], headers=bearer) as resp:
            assert resp.status == 403
        async with tech_http.get(f"{node.base}/api/sessions/{session}/files") as resp:
            listed = await resp.json()
        assert listed["files"][0]["name"] == snap["name"]
        camera.running.set()
    finally:
        await customer.close()
        await technician.close()
    snapshot = next(e for e in events(node, session) if e["kind"] == "snapshot")
    assert snapshot["file"] == snap["name"] and snapshot["by"] == "technician:tech-1"


async def test_chat_goes_both_ways(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer, technician, session = await live(node, http, tech_http)
    try:
        await ask(customer, "t1", type="say", session=session, text=" It clicks. ")
        heard = await technician.expect("said", session=session)
        assert (heard["role"], heard["text"]) == ("customer", "It clicks.")
        await ask(technician, "t2", type="say", session=session, text="Hold it up")
        told = await customer.expect("said", role="technician")
        assert told["text"] == "Hold it up" and told["name"] == "tech-1"
        empty = await ask(customer, "t3", type="say", session=session, text="  ")
        assert empty["code"] == "bad_message"
    finally:
        await customer.close()
        await technician.close()
    chat = [e for e in events(node, session) if e["kind"] == "chat"]
    assert [e["text"] for e in chat] == ["It clicks.", "Hold it up"]


@pytest.fixture
async def small_node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await start_node(
        node_config(tmp_path / "data", max_push_bytes=2000, max_photo_bytes=3000)
    )
    yield running
    await running.runner.cleanup()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def test_file_push_checks_type_and_size(
    small_node: RunningNode,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
) -> None:
    node = small_node
    customer, technician, session = await live(node, http, tech_http)
    url = f"{node.base}/api/sessions/{session}/files"
    origin = {"Origin": node.base}
    try:
        async with tech_http.post(
            url, data=b"MZ\x90\x00 not a pdf", headers=origin
        ) as r:
            assert r.status == 415
            assert await r.json() == {
                "code": "unsupported_type",
                "reason": "Only JPG, PDF, PNG, WEBP files are accepted; "
                "this file is not one of them.",
            }
        async with tech_http.post(url, data=PDF + b" " * 2000, headers=origin) as r:
            assert r.status == 413
            assert await r.json() == {
                "code": "too_large",
                "reason": f"The file is {len(PDF) + 2000} bytes; "
                "the limit is 2000 bytes.",
            }
        async with tech_http.post(url, data=PDF) as r:  # no Origin: cross-site
            assert r.status == 403
        async with tech_http.post(url, data=PDF, headers=origin) as r:
            assert r.status == 201
            pushed = await r.json()
        assert pushed["mime"] == "application/pdf" and pushed["kind"] == "pushed"
        got = await customer.expect("files", added=pushed["name"])
        assert [f["name"] for f in got["files"]] == [pushed["name"]]
        bearer = {"Authorization": f"Bearer {customer.boot['token']}"}
        async with http.get(node.base + pushed["url"], headers=bearer) as r:
            assert r.status == 200 and await r.read() == PDF
            assert r.content_type == "application/pdf"

        # The customer's phone photo: images only, within its own limit.
        photo_url = f"{node.base}/api/sessions/{session}/photo"
        async with http.post(photo_url, data=PDF, headers=bearer) as r:
            assert r.status == 415 and (await r.json())["code"] == "unsupported_type"
        _, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
        async with http.post(photo_url, data=jpeg.tobytes(), headers=bearer) as r:
            assert r.status == 201
            photo = await r.json()
        assert (photo["kind"], photo["width"], photo["height"]) == ("photo", 64, 48)
        await technician.expect("files", added=photo["name"])
        async with tech_http.post(photo_url, data=jpeg.tobytes()) as r:
            assert r.status == 403
    finally:
        await customer.close()
        await technician.close()
    kinds = [e["kind"] for e in events(node, session)]
    assert "file_push" in kinds and "photo" in kinds


async def test_paused_camera_is_a_slate_in_the_recording(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer, technician, session = await live(node, http, tech_http)
    try:
        await wait_for(lambda: technician.video.frames >= 30, 10, "1 s live")
        await ask(customer, "x1", type="pause", session=session, paused=True)
        told = await technician.expect("tools", paused=True)
        assert told["session"] == session
        refused = await ask(technician, "x2", type="freeze", session=session)
        assert refused["code"] == "wrong_state"
        frames_then = technician.video.frames
        await wait_for(lambda: technician.video.frames > frames_then + 25, 10, "slate")
        await ask(customer, "x3", type="pause", session=session, paused=False)
        await technician.expect("tools", paused=False)
        frames_then = technician.video.frames
        await wait_for(lambda: technician.video.frames > frames_then + 30, 10, "live")
        await customer.send(type="end", session=session)
        await technician.expect("ended", session=session)
    finally:
        await customer.close()
        await technician.close()

    timeline = {e["kind"]: e["t"] for e in events(node, session)}
    directory = node.config.recordings_dir / session
    start = json.loads((directory / "meta.json").read_text())["start_s"]
    paused_at = timeline["camera_paused"] - start
    resumed_at = timeline["camera_resumed"] - start
    with av.open(str(directory / "video.mp4")) as container:
        frames = [
            (float(f.time), f.to_ndarray(format="rgb24")[100:380, 40:600])
            for f in container.decode(video=0)
        ]

    def red(image: Image) -> bool:
        r, g, b = np.median(image.reshape(-1, 3), axis=0)
        return bool(r > 180 and g < 80 and b < 80)

    def slate(image: Image) -> bool:
        r, g, b = np.median(image.reshape(-1, 3), axis=0)
        return bool(r < 40 and g < 40 and b < 50)

    gap = [i for t, i in frames if paused_at + 0.3 < t < resumed_at - 0.1]
    assert len(gap) > 10
    assert all(slate(i) for i in gap), "the pause is not a slate"
    assert all(red(i) for t, i in frames if t < paused_at - 0.3)
    assert any(red(i) for t, i in frames if t > resumed_at + 0.5)
