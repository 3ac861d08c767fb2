"""Feed: encode once, keyframes on request (coalesced), slow receivers skip alone.

The PLI test goes through aiortc's real RTCP path: it fails if aiortc stops calling
the sender's `_send_keyframe` on PLI, the private hook `PacketTrack.attach` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiortc
import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from server.media import Feed, Peer, rtc_configuration
from server.media.feed import PacketTrack
from tests.peers import wait_for
from tests.synthetic import ColourCamera


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _frame(value: int = 128) -> av.VideoFrame:
    image = np.full((240, 320, 3), value, np.uint8)
    return av.VideoFrame.from_ndarray(image, format="rgb24")


async def _encoded(feed: Feed, track: PacketTrack) -> av.Packet[Any]:
    return await asyncio.wait_for(track.recv(), 5)


def test_aiortc_is_the_pinned_version() -> None:
    # PacketTrack.attach relies on aiortc 1.16.0's private sender hook.
    assert aiortc.__version__ == "1.16.0"


async def test_keyframe_requests_are_coalesced_but_never_dropped() -> None:
    clock = Clock()
    feed = Feed("test", clock=clock, keyframe_min_gap_s=0.5)
    track = feed.subscribe("viewer")
    try:
        keys: list[bool] = []
        for step, request in [(0.0, False), (0.1, True), (0.1, True), (0.1, False)]:
            clock.now += step
            if request:
                feed.request_keyframe("test")
            feed.push(_frame())
            keys.append((await _encoded(feed, track)).is_keyframe)
        # The receiver joining forced the first keyframe; requests inside the 0.5 s
        # gap after it wait for the gap's end (coalesced into one), never dropped.
        assert keys == [True, False, False, False]
        clock.now += 0.35
        feed.push(_frame())
        assert (await _encoded(feed, track)).is_keyframe
        clock.now += 0.1
        feed.push(_frame())
        assert not (await _encoded(feed, track)).is_keyframe
        assert feed.keyframes_forced == 2
    finally:
        await feed.close()


async def test_a_recorder_added_inside_the_gap_gets_its_keyframe_at_once() -> None:
    clock = Clock()
    feed = Feed("test", clock=clock, keyframe_min_gap_s=0.5)
    track = feed.subscribe("viewer")
    try:
        feed.push(_frame())
        assert (await _encoded(feed, track)).is_keyframe  # the viewer's, forced
        recorded: list[bool] = []
        feed.add_listener(lambda packet: recorded.append(packet.is_keyframe))
        clock.now += 0.1  # well inside the 0.5 s gap that coalesces PLIs
        feed.push(_frame())
        assert (await _encoded(feed, track)).is_keyframe
        assert recorded == [True]
    finally:
        await feed.close()


async def test_one_encode_serves_every_receiver() -> None:
    feed = Feed("test")
    tracks = [feed.subscribe(f"viewer-{i}") for i in range(3)]
    try:
        feed.push(_frame())
        packets = [await _encoded(feed, t) for t in tracks]
        assert packets[0] is packets[1] is packets[2]
        assert feed.frames_encoded == 1
    finally:
        await feed.close()


async def test_a_feed_nobody_receives_encodes_nothing_until_someone_comes() -> None:
    feed = Feed("idle")
    try:
        for _ in range(3):
            feed.push(_frame())
            await wait_for(lambda: feed._pending is None, 5, "the feed takes it")
        assert feed.frames_in == 3 and feed.frames_encoded == 0
        track = feed.subscribe("late")
        feed.push(_frame())
        assert (await _encoded(feed, track)).is_keyframe
        assert feed.frames_encoded == 1
    finally:
        await feed.close()


async def test_stalled_receiver_skips_to_a_keyframe_alone() -> None:
    feed = Feed("test", keyframe_min_gap_s=0.0)
    reader = feed.subscribe("reader")
    stalled = feed.subscribe("stalled")
    try:
        for i in range(80):
            feed.push(_frame(i))
            packet = await _encoded(feed, reader)
            assert packet is not None
        assert stalled.skipped >= 1
        assert reader.skipped == 0
    finally:
        await feed.close()


@pytest.fixture
async def feed_and_peer() -> AsyncIterator[tuple[Feed, RTCPeerConnection]]:
    feed = Feed("pli")
    camera = ColourCamera("blue", 320, 240)

    async def pump() -> None:
        while True:
            feed.push(await camera.recv())

    pumping = asyncio.get_running_loop().create_task(pump())
    server = Peer(
        "pli-server",
        ice_servers=[],
        on_track=lambda t: None,
        on_state=lambda p, s: None,
    )
    client = RTCPeerConnection(rtc_configuration([]))
    client.addTransceiver("video", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    answer = await server.answer(client.localDescription.sdp, [feed.subscribe("v")])
    await client.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    yield feed, client
    pumping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pumping
    await client.close()
    await server.close()
    await feed.close()


async def test_viewer_pli_forces_a_keyframe_from_the_shared_encoder(
    feed_and_peer: tuple[Feed, RTCPeerConnection],
) -> None:
    feed, client = feed_and_peer
    await wait_for(lambda: client.connectionState == "connected", 10, "connected")
    receiver = client.getReceivers()[0]
    await wait_for(lambda: feed.frames_encoded > 10, 10, "encoding")
    before = feed.keyframes_forced
    stats = await receiver.getStats()
    media_ssrc = next(s.ssrc for s in stats.values() if s.type == "inbound-rtp")
    await receiver._send_rtcp_pli(media_ssrc)
    await wait_for(lambda: feed.keyframes_forced > before, 5, "forced keyframe")
