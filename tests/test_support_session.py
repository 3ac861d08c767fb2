"""A customer and a technician as aiortc peers through a real node, recorded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import aiohttp
import av
import numpy as np

from recorder import finalize_crashed
from tests.conftest import RunningNode
from tests.peers import Customer, Technician, wait_for


async def _live_session(
    node: RunningNode,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
    link: str = "",
) -> tuple[Customer, Technician, str]:
    technician = Technician(node.base, tech_http)
    await technician.sign_in(node.login_link("tech-1"))
    await technician.join()

    customer = Customer(node.base, http, colour="red")
    session = await customer.join(link or node.direct_link("tech-1"))
    await technician.expect("session", session=session)
    await technician.take(session)
    await customer.expect("session", state="live", timeout_s=15)
    return customer, technician, session


def _timeline(directory: Path) -> list[dict[str, object]]:
    lines = (directory / "timeline.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def test_customer_camera_reaches_technician_and_is_recorded(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer, technician, session = await _live_session(node, http, tech_http)
    started = time.monotonic()
    try:
        await wait_for(lambda: technician.video.frames >= 60, 15, "technician frames")
        await wait_for(lambda: customer.audio_frames >= 50, 10, "customer hears")
        await wait_for(lambda: technician.audio_frames >= 50, 10, "technician hears")
        assert technician.video.colours.most_common(1)[0][0] == "red"
        assert technician.video.sizes == {(640, 480)}
        await wait_for(lambda: time.monotonic() - started > 4.0, 6, "4 s of session")
        await customer.send(type="end", session=session, reason="done")
        ended = await technician.expect("ended", session=session)
        assert "customer" in ended["reason"]
        duration = time.monotonic() - started
    finally:
        await customer.close()
        await technician.close()

    directory = node.config.recordings_dir / session
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["finalized"] is True
    with av.open(str(directory / "video.mp4")) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 480)
        assert container.streams.audio, "no audio stream in the recording"
        frames = list(container.decode(video=0))
    with av.open(str(directory / "video.mp4")) as container:
        samples = np.concatenate(
            [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        )
        rate = container.streams.audio[0].rate
    # Both voices are in the mix: the customer's 440 Hz and the technician's 660 Hz.
    spectrum = np.abs(np.fft.rfft(samples[-rate * 2 :]))
    freqs = np.fft.rfftfreq(rate * 2, 1 / rate)
    loud = float(np.median(spectrum)) * 20
    for hz in (440, 660):
        band = spectrum[(freqs > hz - 5) & (freqs < hz + 5)]
        assert band.max() > loud, f"{hz} Hz voice missing from the recording"
    assert frames, "the recording has no video frames"
    media_s = float(frames[-1].time - frames[0].time)
    assert abs(media_s - duration) < 1.0, (media_s, duration, meta["start_s"])
    kinds = [event["kind"] for event in _timeline(directory)]
    assert kinds[0] == "created" and kinds[-1] == "end"
    assert "join" in kinds and "state" in kinds
    assert await node.metric("peer_connections") == 0
    assert await node.metric("sessions_active") == 0


async def test_customer_vanishing_ends_session_with_reason(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    tasks_before = len(asyncio.all_tasks())
    threads_before = {t.name for t in threading.enumerate()}
    customer, technician, session = await _live_session(node, http, tech_http)
    try:
        await wait_for(lambda: technician.video.frames >= 10, 10, "frames")
        # Abrupt: the peer and socket vanish without an 'end' message.
        await customer.pc.close()
        assert customer.ws is not None
        await customer.ws.close()
        ended = await technician.expect("ended", session=session, timeout_s=15)
        assert "customer" in ended["reason"]
    finally:
        await customer.close()
        await technician.close()
    await wait_for(lambda: node.node.desk.sessions == {}, 5, "session gone")
    assert await node.metric("peer_connections") == 0
    # Nothing of the session keeps running: its tasks, encoder and writer threads.
    await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before, 5, "tasks end")
    leftover = {t.name for t in threading.enumerate()} - threads_before
    assert not {name for name in leftover if "feed" in name or "record" in name}
    events = _timeline(node.config.recordings_dir / session)
    assert events[-1]["kind"] == "end"
    assert "customer left" in str(events[-1]["reason"])


async def test_reload_rejoins_the_same_session(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    link = node.direct_link("tech-1")
    customer, technician, session = await _live_session(node, http, tech_http, link)
    again = Customer(node.base, http, colour="green")
    try:
        await wait_for(lambda: technician.video.frames >= 10, 10, "frames")
        await customer.pc.close()
        assert customer.ws is not None
        await customer.ws.close()
        # The same device opens the same link again, within the rejoin grace.
        assert await again.join(link) == session
        technician.video.colours.clear()
        await wait_for(
            lambda: technician.video.colours["green"] >= 5, 15, "the new camera"
        )
        assert session in node.node.desk.sessions
    finally:
        await again.close()
        await customer.close()
        await technician.close()


async def test_technician_vanishing_ends_session_after_grace(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer, technician, session = await _live_session(node, http, tech_http)
    try:
        await technician.pc.close()
        assert technician.ws is not None
        await technician.ws.close()
        waiting = await customer.expect("session", timeout_s=5)
        ended = await customer.expect("ended", session=session, timeout_s=10)
        assert ended["reason"] == "technician left and did not return"
        assert waiting["session"] == session
    finally:
        await customer.close()
        await technician.close()
    assert await node.metric("peer_connections") == 0


async def test_socket_that_stops_answering_pings_is_dropped(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        node.direct_link("tech-1"), headers={"Accept": "application/json"}
    ) as resp:
        boot = await resp.json()
    ws = await http.ws_connect(f"{node.base}/ws", autoping=False)
    try:
        await ws.send_json({"v": 1, "type": "join", "token": boot["token"]})
        sessions = node.node.desk.sessions
        await wait_for(lambda: boot["session"] in sessions, 5, "joined")
        session = sessions[boot["session"]]
        # Never answer the server's pings: the heartbeat must notice.
        await wait_for(
            lambda: not session.summary()["present"]["customer"],
            node.config.heartbeat_s * 3,
            "heartbeat drop",
        )
        await wait_for(lambda: node.node.desk.sessions == {}, 5, "session ended")
        assert (
            node.node.desk.ended[boot["session"]] == "customer left and did not return"
        )
    finally:
        await ws.close()


async def test_session_ended_before_media_is_not_taken_for_a_crash(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    customer = Customer(node.base, http)
    try:
        boot = await customer.open_link(node.direct_link("tech-1"))
        await customer.connect_ws()
        await customer.send(type="join", token=boot["token"])
        await customer.expect("welcome")
        await customer.send(type="end", session=boot["session"])
        await customer.expect("ended", session=boot["session"])
    finally:
        await customer.close()
    directory = node.config.recordings_dir / boot["session"]
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["empty"] is True and meta["recovered"] is False
    assert finalize_crashed(node.config.recordings_dir) == []
    assert [e["kind"] for e in _timeline(directory)][-1] == "end"
