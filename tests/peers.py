"""aiortc clients that act as a customer and a technician against a real node."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from server.media import rtc_configuration
from tests.synthetic import ColourCamera, ToneTrack, marker_colour

__all__ = ["Client", "Customer", "Socket", "Technician", "wait_for"]


async def wait_for(predicate: Any, timeout_s: float = 10.0, what: str = "") -> None:
    """Poll a condition (on state, not on time) until it holds or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@dataclass
class Received:
    """What a client decoded from one inbound track."""

    frames: int = 0
    colours: Counter[str] = field(default_factory=Counter)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    last: av.VideoFrame | None = None


class Socket:
    """A signalling websocket that keeps every message it receives."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def connect_ws(self) -> None:
        self.ws = await self.http.ws_connect(f"{self.base}/ws")
        self._tasks.append(asyncio.get_running_loop().create_task(self._listen()))

    async def _listen(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                message: dict[str, Any] = json.loads(msg.data)
                self.messages.append(message)

    async def send(self, **fields: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"v": 1, **fields}))

    def last(self, kind: str, **match: Any) -> dict[str, Any] | None:
        for message in reversed(self.messages):
            if message["type"] == kind and all(
                message.get(k) == v for k, v in match.items()
            ):
                found: dict[str, Any] = message
                return found
        return None

    async def expect(
        self, kind: str, timeout_s: float = 10.0, **match: Any
    ) -> dict[str, Any]:
        await wait_for(lambda: self.last(kind, **match) is not None, timeout_s, kind)
        found = self.last(kind, **match)
        assert found is not None
        return found

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Client(Socket):
    """A websocket and a peer connection, like one browser tab."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        super().__init__(base, http)
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.video = Received()
        self.audio_frames = 0
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.VideoFrame):
                    self.audio_frames += 1
                    continue
                self.video.frames += 1
                self.video.sizes.add((frame.width, frame.height))
                if self.video.frames % 5 == 0:
                    self.video.colours[marker_colour(frame)] += 1
                self.video.last = frame

    async def negotiate(self, session: str, **extra: Any) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send(
            type="offer",
            session=session,
            sdp=self.pc.localDescription.sdp,
            ref="o1",
            **extra,
        )
        answer = await self.expect("answer", ref="o1")
        await self.pc.setRemoteDescription(
            RTCSessionDescription(answer["sdp"], "answer")
        )

    async def close(self) -> None:
        await self.pc.close()
        await super().close()


class Customer(Client):
    """Opens a customer link and sends a colour camera and a tone."""

    def __init__(
        self, base: str, http: aiohttp.ClientSession, colour: str = "red"
    ) -> None:
        super().__init__(base, http)
        self.camera = ColourCamera(colour)
        self.boot: dict[str, Any] = {}

    async def open_link(self, url: str) -> dict[str, Any]:
        async with self.http.get(url, headers={"Accept": "application/json"}) as resp:
            body: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise AssertionError(f"link refused: {resp.status} {body}")
            # Several nodes: the link may have sent us to the session's media node.
            self.base = str(resp.url.origin())
        self.boot = body
        return body

    async def join(self, url: str) -> str:
        await self.open_link(url)
        await self.connect_ws()
        await self.send(type="join", token=self.boot["token"], ref="j")
        await self.expect("welcome")
        self.pc.addTransceiver(self.camera, direction="sendonly")
        self.pc.addTransceiver(ToneTrack(440), direction="sendrecv")
        self.pc.addTransceiver("video", direction="recvonly")
        session = str(self.boot["session"])
        await self.negotiate(
            session, width=self.camera.width, height=self.camera.height
        )
        return session


class Technician(Client):
    """A signed-in console: receives the customer's feed and sends a tone."""

    async def sign_in(self, login_url: str) -> None:
        async with self.http.get(login_url, allow_redirects=False) as resp:
            assert resp.status == 303, resp.status

    async def join(self) -> None:
        await self.connect_ws()
        await self.send(type="join", ref="j")
        await self.expect("welcome")

    async def take(self, session: str, hz: float = 660) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver(ToneTrack(hz), direction="sendrecv")
        await self.negotiate(session)
