"""Demo rooms: a presenter's cameras, a program switched on the server, many viewers.

A room holds its cameras (studio devices, phones that opened a camera link, or
synthetic ones), one `Program` that composes the on-air camera(s) into one
`Feed` (H.264, encoded once for every viewer and the recorder), the presenter's
microphone as one `VoiceFeed` (Opus, encoded once), a `Multiview` for the studio,
its viewers, chat and questions, and while recording a `Recording` with a timeline:

    camera ─ Source ─┐                         ┌─> viewer peers (same packets)
    camera ─ Source ─┼─> Program ─> Feed ──────┼─> studio monitors
    synthetic ───────┘      ▲                  └─> Recording (+ timeline.jsonl)
                 program / zoom messages
    presenter mic ─ Source ─> VoiceFeed ─┬─> viewer peers (same Opus packets)
                                         └─> AudioMixer ─> Recording

Participants: a presenter (staff; several may direct one room), viewers (from the
room's demo link) and phone cameras (from a camera link). Everything is bounded:
viewers, cameras and questions per room, chat length and rate per participant.
This module never imports aiohttp: it talks to participants through `Channel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack

from recorder import AudioMixer, Recording, Timeline
from server.config import Config
from server.errors import AuthError, CapacityError, NotFound, ProtocolError
from server.links import Grant, Kind, LinkSigner
from server.media import (
    Feed,
    Layout,
    Look,
    Multiview,
    Peer,
    PeerState,
    Program,
    Shot,
    Source,
    SyntheticCamera,
    Tile,
    VoiceFeed,
    Zoom,
)
from server.media.feed import VIDEO_TIME_BASE, shifted_copy
from server.media.program import BACK_SOON, STARTING_SOON
from server.messages import (
    Ask,
    CameraLink,
    CameraRemove,
    Chat,
    ClientMessage,
    Expert,
    Moderate,
    Record,
    RoomEnd,
    RoomOffer,
    Type,
    encode,
)
from server.messages import Program as ProgramMessage
from server.messages import Zoom as ZoomMessage
from server.support import Channel
from server.turn import ice_servers

__all__ = [
    "DEMO_ROOM",
    "Camera",
    "CameraKind",
    "Member",
    "Room",
    "RoomDirectory",
    "RoomRole",
]

logger = logging.getLogger(__name__)

DEMO_ROOM = "demo"
"""Id of the built-in demo room with synthetic cameras."""
STAFF_ROLES = frozenset({"presenter", "admin", "supervisor"})
"""Staff roles that may open and direct rooms."""

_CAMERA_LINK_TTL_S = 12 * 3600
_SUMMARY_EVERY_S = 0.25
"""Room summaries are coalesced to at most one per this, seconds."""
_MIX_EVERY_S = 0.1
_MULTIVIEW_SIZE = (640, 360)


class RoomRole(enum.StrEnum):
    PRESENTER = "presenter"
    VIEWER = "viewer"
    CAMERA = "camera"


class RoomState(enum.StrEnum):
    OPEN = "open"
    ENDED = "ended"


class CameraKind(enum.StrEnum):
    STUDIO = "studio"
    PHONE = "phone"
    SYNTHETIC = "synthetic"


class _Bucket:
    """A token bucket: `burst` at once, then `per_minute`."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass
class Camera:
    id: str
    name: str
    kind: CameraKind
    number: int
    owner: str = ""
    peer: Peer | None = None
    source: Source | None = None
    synthetic: SyntheticCamera | None = None


@dataclass
class Member:
    """One connected participant of a room."""

    id: str
    role: RoomRole
    name: str
    channel: Channel
    room: Room
    camera: str = ""
    """For a phone camera: the camera its link publishes."""
    peers: dict[str, Peer] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    bucket: _Bucket | None = None
    expert_url: str = ""

    @property
    def staff(self) -> bool:
        return self.role == RoomRole.PRESENTER


@dataclass
class Question:
    id: int
    asker: str
    name: str
    text: str
    at: float
    answered: bool = False
    pinned: bool = False

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "text": self.text,
            "at": round(self.at, 3),
            "answered": self.answered,
            "pinned": self.pinned,
        }


class Room:
    def __init__(
        self,
        room_id: str,
        *,
        title: str,
        presenter: str,
        config: Config,
        viewer_url: str,
        on_closed: Callable[[Room], None],
    ) -> None:
        self.id = room_id
        self.title = title
        self.presenter = presenter
        self.state = RoomState.OPEN
        self.end_reason = ""
        self.viewer_url = viewer_url
        self.support_queue = config.room_queue or next(iter(config.queues), "support")
        """Where "Talk to an expert" puts this room's viewers."""
        self.created = time.time()
        self._config = config
        self._on_closed = on_closed
        self._t0 = time.monotonic()
        size = (config.program_width, config.program_height)
        self.feed = Feed(
            f"{room_id}/program",
            clock=self.clock,
            bitrate=config.video_bitrate,
            fps_hint=config.video_fps,
            keyframe_interval_s=config.keyframe_interval_s,
            keyframe_min_gap_s=config.keyframe_min_gap_s,
            size=size,
        )
        self.program = Program(
            room_id,
            self.feed,
            size=size,
            fps=config.video_fps,
            hold_s=config.camera_hold_s,
            title=title,
            clock=self.clock,
        )
        self.program.on_tick = self._tick
        self._live: frozenset[str] = frozenset()
        self.voice = VoiceFeed(f"{room_id}/voice")
        self._multiview_feed = Feed(
            f"{room_id}/multiview",
            bitrate=500_000,
            fps_hint=10,
            keyframe_interval_s=config.keyframe_interval_s,
            keyframe_min_gap_s=config.keyframe_min_gap_s,
            size=_MULTIVIEW_SIZE,
        )
        self.multiview = Multiview(
            room_id, self._multiview_feed, self._tiles, size=_MULTIVIEW_SIZE
        )
        self.cameras: dict[str, Camera] = {}
        self._numbers = 0
        self.members: dict[str, Member] = {}
        self.chat: deque[dict[str, Any]] = deque(maxlen=config.chat_history)
        self._chat_ids = 0
        self.questions: dict[int, Question] = {}
        self._question_ids = 0
        self._summary_task: asyncio.Task[None] | None = None
        self._had_camera_on_air = False
        # recording
        self._recording_on = False
        self._recording: Recording | None = None
        self._recordings = 0
        self._rec_dir = config.recordings_dir
        self._rec_t0 = 0.0
        self._timeline: Timeline | None = None
        self._mixer: AudioMixer | None = None
        self._mix_task: asyncio.Task[None] | None = None
        self.last_recording: str = ""
        logger.info("room %s: created (%r) by %s", room_id, title, presenter)

    # clocks and the timeline

    def clock(self) -> float:
        """Seconds since the room opened: the program feed's clock."""
        return time.monotonic() - self._t0

    def _rec_clock(self) -> float:
        """Seconds on the recording's clock (0 at its first frame)."""
        return self.clock() - self._rec_t0

    def event(self, kind: str, **fields: Any) -> None:
        """One timeline event, written while the room is being recorded."""
        if self._timeline is not None and not self._timeline.closed:
            self._timeline.append(kind, **fields)

    # people

    def watched(self) -> bool:
        """Whether anyone takes the program or the studio's multiview."""
        return self.feed.wanted or self._multiview_feed.wanted

    @property
    def viewers(self) -> int:
        return sum(1 for m in self.members.values() if m.role == RoomRole.VIEWER)

    def enter(
        self, role: RoomRole, name: str, channel: Channel, *, camera: str = ""
    ) -> Member:
        if self.state == RoomState.ENDED:
            raise NotFound("This demo has ended.", code="ended")
        if role == RoomRole.VIEWER and self.viewers >= self._config.max_room_viewers:
            raise CapacityError("This demo is full. Please try again in a moment.")
        member = Member(
            f"{role[0]}-{secrets.token_hex(4)}",
            role,
            name,
            channel,
            self,
            camera=camera,
            bucket=_Bucket(self._config.chat_per_minute, self._config.chat_burst),
        )
        self.members[member.id] = member
        self.event("join", role=str(role), member=member.id, viewers=self.viewers)
        logger.info("room %s: %s %s entered", self.id, role, member.id)
        self._changed()
        return member

    async def leave(self, member: Member, reason: str) -> None:
        if self.members.pop(member.id, None) is None:
            return
        for key in list(member.peers):
            await self._drop_peer(member, key)
        self.event("leave", role=str(member.role), member=member.id, reason=reason)
        logger.info("room %s: %s %s left (%s)", self.id, member.role, member.id, reason)
        self._changed()

    def _require_staff(self, member: Member) -> None:
        if not member.staff:
            raise AuthError("Only the presenter can do that.", code="forbidden")

    # summaries

    def summary(self, staff: bool) -> dict[str, Any]:
        shot = self.program.shot
        pinned = next((q for q in self.questions.values() if q.pinned), None)
        out: dict[str, Any] = {
            "room": self.id,
            "title": self.title,
            "state": str(self.state),
            "viewers": self.viewers,
            "on_air": bool(self.program.showing()),
            "pinned": pinned.wire() if pinned else None,
            "recording": self._recording_on,
        }
        if staff:
            out["cameras"] = [
                {
                    "id": c.id,
                    "name": c.name,
                    "kind": str(c.kind),
                    "number": c.number,
                    "live": self.program.live(c.id),
                }
                for c in self.cameras.values()
            ]
            out["program"] = {
                "layout": str(shot.layout),
                "main": shot.main,
                "second": shot.second,
                "slate": shot.slate,
            }
            out["zooms"] = {
                c: {"factor": round(z.factor * 100), "x": round(z.x * 100)}
                | {"y": round(z.y * 100)}
                for c, z in self.program.zooms.items()
            }
            out["viewer_url"] = self.viewer_url
            out["recording_error"] = (
                self._recording.error if self._recording is not None else None
            )
            out["last_recording"] = self.last_recording
        return out

    def _changed(self) -> None:
        """Send summaries soon, coalesced (a busy room changes many times a second)."""
        if self._summary_task is None and self.state == RoomState.OPEN:
            self._summary_task = asyncio.get_running_loop().create_task(
                self._send_summaries(), name=f"room {self.id} summaries"
            )

    async def _send_summaries(self) -> None:
        await asyncio.sleep(_SUMMARY_EVERY_S)
        self._summary_task = None
        await self.send_summary_now()

    async def send_summary_now(self) -> None:
        staff = encode(Type.ROOM, **self.summary(True))
        public = encode(Type.ROOM, **self.summary(False))
        await self._send_all(lambda m: staff if m.staff else public)

    async def _send_all(self, text: Callable[[Member], str | None]) -> None:
        sends = []
        for member in list(self.members.values()):
            body = text(member)
            if body is not None:
                sends.append(_send_quietly(member.channel, body))
        await asyncio.gather(*sends)

    # media

    async def offer(self, member: Member, msg: RoomOffer) -> str:
        """An offer for one purpose; the answer attaches or takes its media."""
        if self.state == RoomState.ENDED:
            raise ProtocolError("This demo has ended.", code="wrong_state")
        outbound: list[MediaStreamTrack] = []
        on_track: Callable[[MediaStreamTrack], None] = _ignore
        label = f"{self.id}/{member.id}"
        known = set(self.cameras)
        if msg.purpose == "watch":
            key = "watch"
            outbound = [
                self.feed.subscribe(f"{label}/program"),
                self.voice.subscribe(f"{label}/voice"),
            ]
        elif msg.purpose == "monitor":
            self._require_staff(member)
            key = "monitor"
            outbound = [
                self.feed.subscribe(f"{label}/program"),
                self._multiview_feed.subscribe(f"{label}/multiview"),
            ]
        elif msg.purpose == "mic":
            self._require_staff(member)
            key = "mic"
            on_track = lambda track: self._take_mic(member, track)  # noqa: E731
        else:
            camera = self._camera_for(member, msg)
            key = f"camera:{camera.id}"
            on_track = lambda track: self._take_camera(member, camera, track)  # noqa: E731

        await self._drop_peer(member, key)
        peer = Peer(
            f"{label}/{key}",
            ice_servers=ice_servers(self._config, f"server-{self.id}"),
            on_track=on_track,
            on_state=lambda p, s: self._peer_state(member, key, p, s),
            max_sdp_bytes=self._config.max_sdp_bytes,
            ice_timeout_s=self._config.ice_timeout_s,
        )
        member.peers[key] = peer
        try:
            answer = await peer.answer(msg.sdp, outbound)
        except Exception:
            for track in outbound:
                track.stop()
            await self._drop_peer(member, key)
            if key.startswith("camera:") and key[7:] not in known:
                # A camera whose first offer failed was never there.
                ghost = self.cameras.pop(key[7:], None)
                if ghost is not None and ghost.number == self._numbers:
                    self._numbers -= 1
                self._changed()
            raise
        if key.startswith("camera:"):
            self.cameras[key[7:]].peer = peer
        return answer

    def _camera_for(self, member: Member, msg: RoomOffer) -> Camera:
        if member.role == RoomRole.CAMERA:
            camera_id, kind = member.camera, CameraKind.PHONE
            name = msg.name.strip() or member.name
        elif member.staff:
            if not msg.camera or not msg.camera.replace("-", "").isalnum():
                raise ProtocolError(
                    "A camera needs a short id (letters, digits, '-').",
                    code="bad_message",
                )
            camera_id, kind = f"s-{msg.camera}", CameraKind.STUDIO
            name = msg.name.strip() or f"Camera {self._numbers + 1}"
        else:
            raise AuthError("Viewers cannot publish cameras.", code="forbidden")
        return self.add_camera(camera_id, name, kind, owner=member.id)

    def add_camera(
        self, camera_id: str, name: str, kind: CameraKind, *, owner: str = ""
    ) -> Camera:
        camera = self.cameras.get(camera_id)
        if camera is None:
            if len(self.cameras) >= self._config.max_room_cameras:
                raise CapacityError(
                    f"A room takes {self._config.max_room_cameras} cameras at most."
                )
            self._numbers += 1
            camera = Camera(camera_id, name[:40], kind, self._numbers)
            self.cameras[camera_id] = camera
            self.event("camera", camera=camera_id, name=camera.name, state="added")
            logger.info("room %s: camera %s (%s) added", self.id, camera_id, name)
        camera.name = name[:40] or camera.name
        camera.owner = owner
        self._changed()
        return camera

    def _take_camera(
        self, member: Member, camera: Camera, track: MediaStreamTrack
    ) -> None:
        if track.kind != "video":
            return
        program = self.program

        def sink(frame: av.frame.Frame) -> None:
            assert isinstance(frame, av.VideoFrame)
            program.put(camera.id, frame)

        key = f"camera:{camera.id}"
        old = member.sources.pop(key, None)
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())
        source = Source(f"{self.id}/{camera.id}", track, sink)
        member.sources[key] = source
        camera.source = source
        self._changed()

    def _take_mic(self, member: Member, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        voice = self.voice

        def sink(frame: av.frame.Frame) -> None:
            assert isinstance(frame, av.AudioFrame)
            voice.push(frame)

        member.sources["mic"] = Source(f"{self.id}/mic", track, sink)

    def _peer_state(
        self, member: Member, key: str, peer: Peer, state: PeerState
    ) -> None:
        if state == PeerState.FAILED and member.peers.get(key) is peer:
            asyncio.get_running_loop().create_task(self._drop_peer(member, key))
        if key.startswith("camera:"):
            self.event("camera", camera=key[7:], state=str(state))
            self._changed()

    async def _drop_peer(self, member: Member, key: str) -> None:
        peer = member.peers.pop(key, None)
        source = member.sources.pop(key, None)
        if source is not None:
            await source.stop()
        if peer is not None:
            await peer.close()
        if key.startswith("camera:"):
            camera = self.cameras.get(key[7:])
            if camera is not None and camera.peer is peer:
                camera.peer = None
                camera.source = None
                self._changed()

    def _tick(self, shot: Shot, showing: tuple[str, ...]) -> None:
        """After each program frame: tell staff when a camera comes or goes away."""
        live = frozenset(c for c in self.cameras if self.program.live(c))
        if live != self._live:
            for camera in live ^ self._live:
                self.event("camera", camera=camera, live=camera in live)
            self._live = live
            self._changed()

    def _tiles(self) -> list[Tile]:
        showing = self.program.showing()
        return [
            Tile(
                c.number,
                c.name,
                self.program.latest(c.id) if self.program.live(c.id) else None,
                c.id in showing,
            )
            for c in self.cameras.values()
        ]

    # directing

    def direct(self, member: Member, msg: ProgramMessage) -> None:
        self._require_staff(member)
        layout = Layout(msg.layout)
        for camera in Shot(layout, msg.main, msg.second).cameras:
            if camera not in self.cameras:
                raise NotFound(f"There is no camera {camera!r} in this room.")
        if layout == Layout.SLATE:
            text = msg.slate.strip() or (
                BACK_SOON if self._had_camera_on_air else STARTING_SOON
            )
            shot = Shot(Layout.SLATE, slate=text)
        else:
            self._had_camera_on_air = True
            second = msg.second if layout != Layout.SINGLE else ""
            shot = Shot(layout, msg.main, second, self.program.shot.slate)
        self.program.set_shot(shot)
        self.event(
            "switch",
            layout=str(shot.layout),
            main=shot.main,
            second=shot.second,
            slate=shot.slate if layout == Layout.SLATE else "",
            by=member.name,
        )
        self._changed()

    def zoom(self, member: Member, msg: ZoomMessage) -> None:
        self._require_staff(member)
        if msg.camera not in self.cameras:
            raise NotFound(f"There is no camera {msg.camera!r} in this room.")
        zoom = Zoom(msg.factor / 100, msg.x / 100, msg.y / 100).clamped()
        self.program.set_zoom(msg.camera, zoom)
        self.event("zoom", camera=msg.camera, factor=zoom.factor, x=zoom.x, y=zoom.y)
        self._changed()

    async def remove_camera(self, member: Member, camera_id: str) -> None:
        self._require_staff(member)
        camera = self.cameras.pop(camera_id, None)
        if camera is None:
            raise NotFound(f"There is no camera {camera_id!r} in this room.")
        owner = self.members.get(camera.owner)
        if owner is not None:
            await self._drop_peer(owner, f"camera:{camera_id}")
        if camera.synthetic is not None:
            await camera.synthetic.stop()
        self.program.forget(camera_id)
        if camera_id in self.program.shot.cameras:
            self.program.set_shot(Shot(Layout.SLATE, slate=BACK_SOON))
        self.event("camera", camera=camera_id, state="removed")
        self._changed()

    # chat and questions

    def _text(self, member: Member, text: str) -> str:
        text = " ".join(text.split())
        if not text:
            raise ProtocolError("Write something first.", code="bad_message")
        if len(text) > self._config.max_chat_chars:
            raise ProtocolError(
                f"Keep it under {self._config.max_chat_chars} characters.",
                code="too_large",
            )
        if member.bucket is not None and not member.bucket.take():
            raise ProtocolError(
                "You are sending messages too fast; wait a moment.",
                code="rate_limited",
            )
        return text

    def _display_name(self, member: Member, name: str) -> str:
        if member.staff:
            return member.name
        name = " ".join(name.split())[:40]
        return name or member.name

    async def say(self, member: Member, msg: Chat) -> None:
        text = self._text(member, msg.text)
        self._chat_ids += 1
        line = {
            "room": self.id,
            "id": self._chat_ids,
            "at": round(time.time(), 3),
            "name": self._display_name(member, msg.name),
            "role": str(member.role),
            "text": text,
        }
        self.chat.append(line)
        self.event("chat", member=member.id, name=line["name"], text=text)
        wire = encode(Type.CHAT_LINE, **line)
        await self._send_all(lambda m: wire)

    async def ask(self, member: Member, msg: Ask) -> None:
        text = self._text(member, msg.text)
        if len(self.questions) >= self._config.max_questions:
            raise CapacityError("This demo takes no more questions.")
        self._question_ids += 1
        question = Question(
            self._question_ids,
            member.id,
            self._display_name(member, msg.name),
            text,
            time.time(),
        )
        self.questions[question.id] = question
        self.event("question", id=question.id, member=member.id, text=text)
        await self._send_questions(question.asker)

    async def moderate(self, member: Member, msg: Moderate) -> None:
        self._require_staff(member)
        question = self.questions.get(msg.question)
        if question is None:
            raise NotFound("There is no such question.")
        if msg.action == "dismiss":
            del self.questions[question.id]
        elif msg.action in ("answered", "reopen"):
            question.answered = msg.action == "answered"
        elif msg.action == "pin":
            for other in self.questions.values():
                other.pinned = other is question
        else:
            question.pinned = False
        self.event("moderate", id=question.id, action=msg.action, by=member.name)
        await self._send_questions(question.asker)
        if msg.action in ("pin", "unpin") or question.pinned:
            self._changed()

    def _questions_for(self, member: Member) -> str | None:
        """Staff see every question; a viewer sees their own."""
        if member.staff:
            chosen = list(self.questions.values())
        else:
            chosen = [q for q in self.questions.values() if q.asker == member.id]
        return encode(
            Type.QUESTIONS, room=self.id, questions=[q.wire() for q in chosen]
        )

    async def _send_questions(self, asker: str) -> None:
        await self._send_all(
            lambda m: self._questions_for(m) if m.staff or m.id == asker else None
        )

    async def welcome(self, member: Member) -> None:
        """What someone entering needs: the summary, recent chat, their questions."""
        await _send_quietly(
            member.channel, encode(Type.ROOM, **self.summary(member.staff))
        )
        for line in list(self.chat):
            await _send_quietly(member.channel, encode(Type.CHAT_LINE, **line))
        questions = self._questions_for(member)
        if questions is not None and (member.staff or self.questions):
            await _send_quietly(member.channel, questions)

    # recording

    def start_recording(self, by: str = "") -> None:
        if self._recording_on or self.state == RoomState.ENDED:
            return
        self._recording_on = True
        self._recordings += 1
        while True:
            self._rec_dir = (
                self._config.recordings_dir / f"{self.id}-{self._recordings}"
            )
            if not self._rec_dir.exists():
                break
            self._recordings += 1
        self._mixer = AudioMixer()
        self.feed.add_listener(self._record_packet)
        self.voice.add_listener(self._record_voice)
        logger.info("room %s: recording into %s (%s)", self.id, self._rec_dir, by)
        self._changed()

    def _record_packet(self, packet: av.Packet[Any]) -> None:
        if self._recording is None:
            if not packet.is_keyframe or packet.pts is None:
                return
            # The recording's clock starts at its first frame, a keyframe.
            self._rec_t0 = float(packet.pts * VIDEO_TIME_BASE)
            width, height = self.program.size
            self._recording = Recording(
                self._rec_dir,
                width=width,
                height=height,
                fragment_s=self._config.recording_fragment_s,
            )
            self._timeline = Timeline(self._rec_dir / "timeline.jsonl", self._rec_clock)
            shot = self.program.shot
            self.event(
                "recording",
                state="started",
                room=self.id,
                title=self.title,
                presenter=self.presenter,
                layout=str(shot.layout),
                main=shot.main,
                second=shot.second,
                slate=shot.slate,
                cameras={c.id: c.name for c in self.cameras.values()},
                viewers=self.viewers,
            )
            self._mix_task = asyncio.get_running_loop().create_task(
                self._mix(), name=f"room {self.id} mix"
            )
        offset = round(self._rec_t0 / VIDEO_TIME_BASE)
        self._recording.put_video(shifted_copy(packet, offset))

    def _record_voice(self, frame: av.AudioFrame) -> None:
        if self._mixer is not None and self._recording is not None:
            self._mixer.push("presenter", frame, self._rec_clock())

    async def _mix(self) -> None:
        while self._mixer is not None:
            await asyncio.sleep(_MIX_EVERY_S)
            if self._mixer is None or self._recording is None:
                return
            for frame in self._mixer.pull(self._rec_clock()):
                self._recording.put_audio(frame)

    async def stop_recording(self, reason: str) -> None:
        if not self._recording_on:
            return
        self._recording_on = False
        self.feed.remove_listener(self._record_packet)
        self.voice.remove_listener(self._record_voice)
        self._mixer = None
        if self._mix_task is not None:
            self._mix_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mix_task
            self._mix_task = None
        self.event("recording", state="stopped", reason=reason)
        if self._recording is not None:
            await self._recording.aclose(reason)
            self.last_recording = self._rec_dir.name
        if self._timeline is not None:
            self._timeline.close()
        self._recording = None
        self._timeline = None
        self._changed()

    # ending

    async def end(self, reason: str) -> None:
        if self.state == RoomState.ENDED:
            return
        logger.info("room %s: %s -> %s", self.id, self.state, RoomState.ENDED)
        await self.stop_recording(reason)
        self.state = RoomState.ENDED
        self.end_reason = reason
        if self._summary_task is not None:
            self._summary_task.cancel()
            self._summary_task = None
        text = encode(Type.ENDED, room=self.id, reason=reason)
        await self._send_all(lambda m: text)
        for member in list(self.members.values()):
            for key in list(member.peers):
                await self._drop_peer(member, key)
        self.members.clear()
        for camera in self.cameras.values():
            if camera.synthetic is not None:
                await camera.synthetic.stop()
        await self.multiview.close()
        await self.program.close()
        await self.feed.close()
        await self._multiview_feed.close()
        self.voice.close()
        logger.info("room %s: closed (%s)", self.id, reason)
        self._on_closed(self)


def _ignore(track: MediaStreamTrack) -> None:
    logger.debug("unexpected %s track ignored", track.kind)


async def _send_quietly(channel: Channel, text: str) -> None:
    try:
        await channel.send(text)
    except (ConnectionError, RuntimeError) as exc:
        logger.debug("channel %s: send failed: %s", channel.label, exc)


class RoomDirectory:
    """The demo rooms of this node, and the links that lead into them."""

    def __init__(
        self, config: Config, signer: LinkSigner, qr: Callable[[str], str]
    ) -> None:
        self._config = config
        self._signer = signer
        self._qr = qr
        self.rooms: dict[str, Room] = {}
        self.ended: dict[str, str] = {}

    # links

    def viewer_url(self, room_id: str) -> str:
        token, _ = self._signer.sign(
            Kind.DEMO, self._config.demo_link_ttl_s, room=room_id
        )
        return f"{self._config.origin}/j/{token}"

    def studio_url(self, room_id: str, name: str = "presenter") -> str:
        """A one-time sign-in link that opens the room's studio."""
        token, _ = self._signer.sign(
            Kind.LOGIN,
            self._config.login_link_ttl_s,
            name=name,
            role="presenter",
            room=room_id,
        )
        return f"{self._config.origin}/j/{token}"

    # rooms

    def get(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            if room_id in self.ended:
                raise NotFound(
                    f"This demo has ended: {self.ended[room_id]}.", code="ended"
                )
            raise NotFound("There is no such demo.")
        return room

    def create(
        self, title: str, presenter: str, room_id: str = "", queue: str = ""
    ) -> Room:
        if queue and queue not in self._config.queues:
            raise NotFound(f"There is no queue named {queue!r}.", code="no_queue")
        if len(self.rooms) >= self._config.max_rooms:
            raise CapacityError("This server hosts as many demos as it can.")
        room_id = room_id or secrets.token_hex(5)
        if room_id in self.rooms:
            raise ProtocolError("That room is already open.", code="wrong_state")
        room = Room(
            room_id,
            title=" ".join(title.split())[:80] or "Live demo",
            presenter=presenter,
            config=self._config,
            viewer_url=self.viewer_url(room_id),
            on_closed=self._closed,
        )
        room.support_queue = queue or room.support_queue
        self.rooms[room_id] = room
        return room

    def open_demo(self) -> Room:
        """The built-in demo: two synthetic cameras, the wide shot on air."""
        room = self.create("Espresso machine demo", "Tapline", DEMO_ROOM)
        size = room.program.size
        for camera_id, name, look in (
            ("wide", "Wide", Look.WIDE),
            ("close", "Close-up", Look.CLOSE),
        ):
            camera = room.add_camera(camera_id, name, CameraKind.SYNTHETIC)

            def sink(frame: av.VideoFrame, camera_id: str = camera_id) -> None:
                room.program.put(camera_id, frame)

            camera.synthetic = SyntheticCamera(
                name,
                look,
                sink,
                size=size,
                fps=self._config.video_fps,
                wanted=room.watched,
            )
            camera.synthetic.start()
        room.program.set_shot(Shot(Layout.SINGLE, "wide"))
        room._had_camera_on_air = True
        return room

    def _closed(self, room: Room) -> None:
        self.rooms.pop(room.id, None)
        self.ended[room.id] = room.end_reason
        while len(self.ended) > 1000:
            self.ended.pop(next(iter(self.ended)))

    # participants

    async def enter(self, grant: Grant, channel: Channel, ref: str | None) -> Member:
        """A viewer or phone camera with its participant token."""
        room = self.get(grant.get("room"))
        role = RoomRole(grant.get("role", "viewer"))
        if role == RoomRole.PRESENTER:
            raise AuthError("Presenters enter through the studio.", code="forbidden")
        member = room.enter(
            role, grant.get("name") or "Viewer", channel, camera=grant.get("cam")
        )
        await _send_quietly(
            channel,
            encode(
                Type.WELCOME,
                role=str(role),
                room=room.id,
                member=member.id,
                title=room.title,
                ref=ref,
            ),
        )
        await room.welcome(member)
        return member

    async def studio(
        self,
        staff: Grant,
        room_id: str,
        title: str,
        channel: Channel,
        ref: str | None,
        queue: str = "",
    ) -> Member:
        """A signed-in staff member directs `room_id`, or opens a new room."""
        if staff.get("role") not in STAFF_ROLES:
            raise AuthError("Your role cannot present demos.", code="forbidden")
        name = staff.get("name") or "presenter"
        room = self.get(room_id) if room_id else self.create(title, name, queue=queue)
        member = room.enter(RoomRole.PRESENTER, name, channel)
        await _send_quietly(
            channel,
            encode(
                Type.WELCOME,
                role="presenter",
                room=room.id,
                member=member.id,
                title=room.title,
                name=name,
                viewer_url=room.viewer_url,
                viewer_qr=self._qr(room.viewer_url),
                ref=ref,
            ),
        )
        await room.welcome(member)
        return member

    async def handle(self, member: Member, message: ClientMessage) -> None:
        """One room message from a member; replies carry the message's ref."""
        room = member.room
        if getattr(message, "room", room.id) != room.id:
            raise AuthError("You are not in that room.", code="forbidden")
        ref = message.ref
        if isinstance(message, RoomOffer):
            answer = await room.offer(member, message)
            reply = encode(
                Type.ANSWER,
                room=room.id,
                purpose=message.purpose,
                camera=message.camera,
                sdp=answer,
                ref=ref,
            )
            await member.channel.send(reply)
            return
        if isinstance(message, ProgramMessage):
            room.direct(member, message)
        elif isinstance(message, ZoomMessage):
            room.zoom(member, message)
        elif isinstance(message, Chat):
            await room.say(member, message)
        elif isinstance(message, Ask):
            await room.ask(member, message)
        elif isinstance(message, Moderate):
            await room.moderate(member, message)
        elif isinstance(message, Record):
            room._require_staff(member)
            if message.on:
                room.start_recording(member.name)
            else:
                await room.stop_recording(f"stopped by {member.name}")
        elif isinstance(message, CameraLink):
            await member.channel.send(self._camera_invite(member, message.name, ref))
            return
        elif isinstance(message, CameraRemove):
            await room.remove_camera(member, message.camera)
        elif isinstance(message, Expert):
            await member.channel.send(self._expert(member, ref))
            return
        elif isinstance(message, RoomEnd):
            room._require_staff(member)
            if room.id == DEMO_ROOM:
                raise ProtocolError(
                    "The built-in demo runs as long as the server.", code="wrong_state"
                )
            await room.end(f"{message.reason} ({member.name})")
        else:
            raise ProtocolError(f"'{message.type}' is not a room message.")
        await member.channel.send(encode(Type.OK, ref=ref))

    def _camera_invite(self, member: Member, name: str, ref: str | None) -> str:
        member.room._require_staff(member)
        name = " ".join(name.split())[:40] or "Phone"
        token, grant = self._signer.sign(
            Kind.CAMERA, _CAMERA_LINK_TTL_S, room=member.room.id, name=name
        )
        url = f"{self._config.origin}/j/{token}"
        logger.info("room %s: camera link %s made", member.room.id, grant.id)
        return encode(
            Type.CAMERA_INVITE,
            room=member.room.id,
            name=name,
            url=url,
            qr_svg=self._qr(url),
            expires_at=grant.expires_at,
            ref=ref,
        )

    def _expert(self, member: Member, ref: str | None) -> str:
        """A support link into the room's support queue, made once per viewer."""
        if not member.expert_url:
            token, grant = self._signer.sign(
                Kind.SUPPORT,
                self._config.customer_link_ttl_s,
                queue=member.room.support_queue,
            )
            member.expert_url = f"{self._config.origin}/j/{token}"
            member.room.event(
                "expert",
                member=member.id,
                link=grant.id,
                queue=member.room.support_queue,
            )
        return encode(
            Type.EXPERT_LINK, room=member.room.id, url=member.expert_url, ref=ref
        )

    async def leave(self, member: Member, reason: str) -> None:
        await member.room.leave(member, reason)

    async def close_all(self, reason: str) -> None:
        await asyncio.gather(
            *(room.end(reason) for room in list(self.rooms.values())),
            return_exceptions=True,
        )
