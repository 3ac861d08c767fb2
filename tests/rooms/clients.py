"""aiortc clients of a demo room: a presenter in the studio and viewers of a link.

Each purpose (watch, monitor, one camera, the microphone) is its own peer
connection, as in the browser pages. Every decoded program frame is kept as
(arrival time, marker colour) so tests can see exactly when a switch arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from server.media import Feed, rtc_configuration
from tests.peers import Socket, wait_for
from tests.synthetic import marker_colour

__all__ = ["Decoded", "Picture", "Presenter", "RoomClient", "Viewer"]


class Decoded:
    """Decodes the feed's packets like a viewer would."""

    def __init__(self, feed: Feed) -> None:
        self.codec = av.CodecContext.create("h264", "r")
        self.frames: list[av.VideoFrame] = []
        self.colours: list[str] = []
        self.times: list[float] = []
        """When each frame's packets left the feed (monotonic seconds)."""
        feed.add_listener(self._packet)

    def _packet(self, packet: av.Packet[Any]) -> None:
        if not self.frames and not packet.is_keyframe:
            return  # joined mid-stream: start at the keyframe a listener gets
        for frame in self.codec.decode(av.Packet(bytes(packet))):
            self.frames.append(frame)
            self.colours.append(marker_colour(frame))
            self.times.append(time.monotonic())


@dataclass
class Picture:
    """What a client decoded from one inbound video track."""

    times: list[float] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)
    last: av.VideoFrame | None = None

    @property
    def frames(self) -> int:
        return len(self.times)

    def colours_since(self, index: int) -> list[str]:
        return self.colours[index:]


class RoomClient(Socket):
    """A websocket and one peer connection per purpose, like one browser tab."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        super().__init__(base, http)
        self.peers: dict[str, RTCPeerConnection] = {}
        self.pictures: dict[str, Picture] = {}
        """Decoded video per purpose ('watch', 'monitor')."""
        self.audio_frames = 0
        self.room = ""
        self._refs = 0

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one message and return its reply or its error (matched by ref)."""
        assert self.ws is not None
        self._refs += 1
        ref = f"r{self._refs}"
        if kind not in ("enter", "studio"):
            fields.setdefault("room", self.room)
        await self.ws.send_str(json.dumps({"v": 1, "type": kind, "ref": ref, **fields}))
        await wait_for(lambda: self._reply(ref) is not None, 15, f"reply to {kind}")
        reply = self._reply(ref)
        assert reply is not None
        return reply

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """`request`, failing the test on an error reply."""
        reply = await self.request(kind, **fields)
        assert reply["type"] != "error", reply
        return reply

    def _reply(self, ref: str) -> dict[str, Any] | None:
        return next((m for m in self.messages if m.get("ref") == ref), None)

    async def summary(self, timeout_s: float = 10.0, **match: Any) -> dict[str, Any]:
        """The newest room summary once it matches `match`."""

        def newest() -> dict[str, Any] | None:
            found = self.last("room")
            if found is not None and all(found.get(k) == v for k, v in match.items()):
                return found
            return None

        await wait_for(lambda: newest() is not None, timeout_s, f"room {match}")
        found = newest()
        assert found is not None
        return found

    # media

    async def _negotiate(
        self, pc: RTCPeerConnection, purpose: str, **fields: Any
    ) -> dict[str, Any]:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.call(
            "room_offer", purpose=purpose, sdp=pc.localDescription.sdp, **fields
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        return answer

    async def watch(self, purpose: str = "watch") -> RTCPeerConnection:
        """Receive the program (and the voice or the multiview)."""
        pc = RTCPeerConnection(rtc_configuration([]))
        picture = self.pictures.setdefault(purpose, Picture())
        second: list[MediaStreamTrack] = []

        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and second:
                # The monitor's second video is the multiview: counted, not kept.
                self._read(track, Picture())
                return
            if track.kind == "video":
                second.append(track)
            self._read(track, picture)

        pc.on("track", on_track)
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("video" if purpose == "monitor" else "audio", "recvonly")
        self.peers[purpose] = pc
        await self._negotiate(pc, purpose)
        return pc

    def _read(self, track: MediaStreamTrack, picture: Picture) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    if not isinstance(frame, av.VideoFrame):
                        self.audio_frames += 1
                        continue
                    # A small copy is enough for the marker, and cheap.
                    small = frame.reformat(width=160, height=120)
                    picture.colours.append(marker_colour(small))
                    picture.times.append(time.monotonic())
                    picture.last = frame

        self._tasks.append(asyncio.get_running_loop().create_task(read()))

    async def enter(self, link: str) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        async with self.http.get(link, headers=headers) as resp:
            boot: dict[str, Any] = await resp.json()
            assert resp.status == 200, (resp.status, boot)
        await self.connect_ws()
        welcome = await self.call("enter", token=boot["token"])
        self.room = welcome["room"]
        return welcome

    async def publish(
        self, track: MediaStreamTrack, camera: str = "", name: str = ""
    ) -> str:
        """Publish `track` as a camera (or the mic); a studio camera is `s-<camera>`."""
        pc = RTCPeerConnection(rtc_configuration([]))
        pc.addTransceiver(track, direction="sendonly")
        purpose = "mic" if track.kind == "audio" else "camera"
        self.peers[camera or purpose] = pc
        await self._negotiate(pc, purpose, camera=camera, name=name)
        return f"s-{camera}" if camera else purpose

    async def close(self) -> None:
        for pc in self.peers.values():
            await pc.close()
        await super().close()


class Viewer(RoomClient):
    """Opens a demo link and watches the program."""


class Presenter(RoomClient):
    """A signed-in staff member in the studio, publishing cameras."""

    async def sign_in(self, login_url: str) -> str:
        async with self.http.get(login_url, allow_redirects=False) as resp:
            assert resp.status == 303, resp.status
            return resp.headers["Location"]

    async def studio(self, title: str = "", room: str = "") -> dict[str, Any]:
        await self.connect_ws()
        welcome = await self.call("studio", title=title, room=room)
        self.room = welcome["room"]
        return welcome

    async def direct(
        self, layout: str, main: str = "", second: str = "", slate: str = ""
    ) -> None:
        await self.call("program", layout=layout, main=main, second=second, slate=slate)
