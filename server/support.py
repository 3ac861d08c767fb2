"""Support sessions: a customer and a technician (and maybe an expert), media
through the server.

A session is created when a customer enters through a link and ends once, with a
reason: either side ends it, a participant stays away longer than the rejoin grace,
or the server stops. Media wiring, per session:

    customer camera ─ Source ─> Feed (H.264, encoded once) ─┬─> technician's peer
                                                             └─> Recording
    customer mic ─ Source ─┬─> technician's peer       technician mic ─┬─> customer
                           └─> AudioMixer ─> Recording                 └─> AudioMixer
    technician camera (optional) ─ Source ─> customer's peer (small inset)

An expert added to a live session gets the customer's feed like the technician. With
three voices a plain relay no longer works, so every voice goes through `MixMinus`:
each participant hears the mix of the others, never themselves; the recording's
mixer hears everyone. The expert may leave; the session goes on.

Recording starts when both peers are first connected; the timeline's clock is the
recording's media clock (events before it carry negative times).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
from aiortc import MediaStreamTrack

from recorder import AudioMixer, Recording, Timeline
from recorder.layout import write_meta
from server.config import Config
from server.errors import CapacityError, NotFound, ProtocolError
from server.media import Feed, FrameTrack, Peer, PeerState, Source
from server.media.feed import VIDEO_TIME_BASE, shifted_copy
from server.media.mixminus import MixMinus
from server.messages import Type, encode
from server.tools import SessionTools
from server.turn import ice_servers

__all__ = ["Channel", "Role", "SessionState", "SupportDesk", "SupportSession"]

logger = logging.getLogger(__name__)

_MIX_EVERY_S = 0.1
"""How often mixed audio is pulled into the recording, seconds."""


class Channel(Protocol):
    """How the domain talks to one connected participant (a websocket, in practice)."""

    label: str

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    TECHNICIAN = "technician"
    EXPERT = "expert"
    """A second technician asked in to help; may leave without ending the session."""


class SessionState(enum.StrEnum):
    QUEUED = "queued"
    """The customer waits in a queue for a technician to be assigned."""
    WAITING = "waiting"
    """The customer is in; the technician has not connected yet."""
    CONNECTING = "connecting"
    LIVE = "live"
    ENDED = "ended"


def new_session_id() -> str:
    return secrets.token_hex(8)


@dataclass
class _Seat:
    """One role's place in a session."""

    role: Role
    name: str
    channel: Channel | None = None
    peer: Peer | None = None
    sources: list[Source] = field(default_factory=list)
    outlets: dict[str, MediaStreamTrack] = field(default_factory=dict)
    grace: asyncio.TimerHandle | None = None
    answering: bool = False
    """An offer of this seat is being answered (gathering our candidates)."""


class SupportSession:
    def __init__(
        self,
        session_id: str,
        *,
        technician: str,
        customer: str,
        link_id: str,
        config: Config,
        on_closed: Callable[[SupportSession], None],
        queue: str = "",
        on_expert_left: Callable[[SupportSession, str], None] | None = None,
    ) -> None:
        self.id = session_id
        self.link_id = link_id
        self.queue = queue
        self.state = SessionState.WAITING if technician else SessionState.QUEUED
        self.end_reason = ""
        self.created = time.time()
        self.was_live = False
        self.clock_at_end = 0.0
        """True once both sides had media: the technician handled this session."""
        self._config = config
        self._on_closed = on_closed
        self._on_expert_left = on_expert_left
        self.invite = ""
        """Who is being asked in as an expert, in words ("" when nobody)."""
        self._seats = {
            Role.CUSTOMER: _Seat(Role.CUSTOMER, customer),
            Role.TECHNICIAN: _Seat(Role.TECHNICIAN, technician),
            Role.EXPERT: _Seat(Role.EXPERT, ""),
        }
        self._voices = MixMinus(session_id)
        self._expert_leaving: asyncio.Task[None] | None = None
        self._t0 = time.monotonic()
        self._media_t0: float | None = None
        self._video_shift = 0
        """Feed ticks (1/90000 s) from creation to the recording's start."""
        self._early_events: list[tuple[float, str, dict[str, Any]]] = []
        self._replaying: float | None = None
        self._timeline: Timeline | None = None
        self._directory = config.recordings_dir / session_id
        self._recording: Recording | None = None
        self._recording_error_told = False
        self._mixer: AudioMixer | None = None
        self._mix_task: asyncio.Task[None] | None = None
        self._feed = Feed(
            f"{session_id}/customer",
            clock=self._feed_clock,
            bitrate=config.video_bitrate,
            keyframe_interval_s=config.keyframe_interval_s,
            keyframe_min_gap_s=config.keyframe_min_gap_s,
        )
        self.tools = SessionTools(self, self._feed, self._directory, config)
        self._closing: asyncio.Task[None] | None = None
        logger.info(
            "session %s: created for customer %s and technician %s",
            self.id,
            customer,
            technician,
        )
        self.event("created", technician=technician, customer=customer, queue=queue)

    # clocks and timeline

    def _media_clock(self) -> float:
        """Seconds on the recording's clock (since creation until it starts)."""
        return time.monotonic() - (self._media_t0 or self._t0)

    def _feed_clock(self) -> float:
        """Seconds since creation: the feed's pts must never go back, even when the
        recording's clock starts (the technician may be watching already)."""
        return time.monotonic() - self._t0

    def event(self, kind: str, **fields: Any) -> None:
        """Add one event to the timeline, on the media clock."""
        if self._timeline is not None:
            self._timeline.append(kind, **fields)
        else:
            self._early_events.append((time.monotonic(), kind, fields))

    def _timeline_clock(self) -> float:
        if self._replaying is not None:
            return self._replaying
        return self._media_clock()

    def _open_timeline(self, t0: float) -> Timeline:
        """Open the timeline once its zero is known; write what happened before."""
        self._directory.mkdir(parents=True, exist_ok=True)
        timeline = Timeline(self._directory / "timeline.jsonl", self._timeline_clock)
        for at, kind, fields in self._early_events:
            self._replaying = at - t0
            timeline.append(kind, **fields)
        self._replaying = None
        self._early_events.clear()
        return timeline

    # participants

    @property
    def technician(self) -> str:
        return self._seats[Role.TECHNICIAN].name

    @property
    def customer(self) -> str:
        return self._seats[Role.CUSTOMER].name

    @property
    def expert(self) -> str:
        return self._seats[Role.EXPERT].name

    def role_of(self, name: str) -> Role | None:
        """The staff seat `name` holds in this session, if any."""
        for role in (Role.TECHNICIAN, Role.EXPERT):
            if name and self._seats[role].name == name:
                return role
        return None

    def _pair(self) -> tuple[_Seat, _Seat]:
        """The customer's and the technician's seats: they make a session live."""
        return self._seats[Role.CUSTOMER], self._seats[Role.TECHNICIAN]

    def summary(self) -> dict[str, Any]:
        seats = [s for s in self._seats.values() if s.role != Role.EXPERT or s.name]
        return {
            "session": self.id,
            "state": str(self.state),
            "technician": self.technician,
            "customer": self.customer,
            "expert": self.expert,
            "invite": self.invite,
            "queue": self.queue,
            "present": {str(s.role): s.channel is not None for s in seats},
            "media": {
                str(s.role): str(s.peer.state) if s.peer else "none" for s in seats
            },
            "recording": self._recording is not None,
            "recording_error": self._recording.error if self._recording else None,
        }

    def holds(self, role: Role, channel: Channel) -> bool:
        """True while `channel` is the one this role's seat listens to."""
        return self._seats[role].channel is channel

    async def tell_customer(self, text: str) -> None:
        channel = self._seats[Role.CUSTOMER].channel
        if channel is not None:
            await _send_quietly(channel, text)

    async def tell(self, role: str | None, text: str) -> bool:
        """Send to one role's page (None: both); False when that role is away."""
        seats = [s for s in self._seats.values() if role is None or s.role == role]
        sent = False
        for seat in seats:
            if seat.channel is not None:
                await _send_quietly(seat.channel, text)
                sent = True
        return sent

    async def broadcast(self) -> None:
        text = encode(Type.SESSION, **self.summary())
        for seat in self._seats.values():
            if seat.channel is not None:
                await _send_quietly(seat.channel, text)

    async def attach(self, role: Role, channel: Channel) -> None:
        """A participant's signalling channel arrived (first time or a rejoin)."""
        if self.state == SessionState.ENDED:
            raise NotFound("This session has ended.", code="ended")
        seat = self._seats[role]
        if seat.grace is not None:
            seat.grace.cancel()
            seat.grace = None
        old = seat.channel
        seat.channel = channel
        if old is not None and old is not channel:
            # The newest tab wins: tell the older one why it lost the session.
            await _send_quietly(
                old,
                encode(
                    Type.ERROR,
                    code="replaced",
                    reason="This session was opened in another tab or window.",
                    session=self.id,
                ),
            )
        self.event("join", role=str(role), name=seat.name)
        await self.broadcast()
        await self.tools.welcome(role)

    async def detach(self, role: Role, channel: Channel, reason: str) -> None:
        """A participant's channel closed; they have the grace period to return."""
        seat = self._seats[role]
        if seat.channel is not channel or self.state == SessionState.ENDED:
            return
        seat.channel = None
        self.event("leave", role=str(role), name=seat.name, reason=reason)
        await self._drop_media(seat)
        grace = self._config.rejoin_grace_s
        if self.state == SessionState.QUEUED:
            grace = self._config.queue_grace_s
        seat.grace = asyncio.get_running_loop().call_later(
            grace, self._grace_expired, role
        )
        logger.info(
            "session %s: %s left (%s); %.0f s to return", self.id, role, reason, grace
        )
        await self.broadcast()

    def _grace_expired(self, role: Role) -> None:
        self._seats[role].grace = None
        if role == Role.EXPERT:
            self._expert_leaving = asyncio.get_running_loop().create_task(
                self.remove_expert("the expert left and did not return"),
                name=f"expert leaves {self.id}",
            )
            return
        self.end_soon(f"{role} left and did not return")

    async def assign(self, technician: str) -> None:
        """Routing gave this queued customer to `technician`."""
        if self.state != SessionState.QUEUED:
            raise ProtocolError(
                "This session is not waiting in a queue.", code="wrong_state"
            )
        self._seats[Role.TECHNICIAN].name = technician
        self.event("assigned", technician=technician, queue=self.queue)
        await self._set_state(SessionState.WAITING)
        await self.broadcast()

    async def release_technician(self, to_queue: str, to_technician: str = "") -> str:
        """The technician hands the customer on: back to a queue or to a named
        technician; the customer stays connected."""
        seat = self._seats[Role.TECHNICIAN]
        if self.state == SessionState.ENDED or not seat.name:
            raise ProtocolError(
                "There is no technician to hand over from.", code="wrong_state"
            )
        previous = seat.name
        await self._drop_media(seat)
        if seat.channel is not None:
            to = to_technician or to_queue
            await _send_quietly(
                seat.channel,
                encode(Type.ENDED, session=self.id, reason=f"transferred to {to}"),
            )
        seat.channel, seat.name = None, ""
        self.event(
            "transfer", technician=previous, queue=to_queue, to=to_technician or None
        )
        self.queue = to_queue
        await self._set_state(SessionState.QUEUED)
        await self.broadcast()
        return previous

    async def add_expert(self, name: str) -> None:
        """Routing gave the technician's expert invitation to `name`."""
        seat = self._seats[Role.EXPERT]
        if self.state in (SessionState.QUEUED, SessionState.ENDED) or seat.name:
            raise ProtocolError(
                "This session cannot take an expert now.", code="wrong_state"
            )
        seat.name, self.invite = name, ""
        self.event("expert", expert=name, technician=self.technician)
        logger.info("session %s: expert %s added", self.id, name)
        await self.broadcast()

    def expert_away(self) -> None:
        """The expert's consoles all closed (maybe before they ever connected):
        they have the rejoin grace to come back, as after a detach."""
        seat = self._seats[Role.EXPERT]
        if seat.name and seat.channel is None and seat.grace is None:
            seat.grace = asyncio.get_running_loop().call_later(
                self._config.rejoin_grace_s, self._grace_expired, Role.EXPERT
            )

    async def remove_expert(self, reason: str) -> None:
        """The expert leaves (or is gone too long); the session goes on."""
        seat = self._seats[Role.EXPERT]
        name = seat.name
        if not name or self.state == SessionState.ENDED:
            return
        if seat.grace is not None:
            seat.grace.cancel()
            seat.grace = None
        await self._drop_media(seat)
        if seat.channel is not None:
            await _send_quietly(
                seat.channel, encode(Type.ENDED, session=self.id, reason=reason)
            )
        seat.channel, seat.name = None, ""
        self.event("expert_left", expert=name, reason=reason)
        logger.info("session %s: expert %s left (%s)", self.id, name, reason)
        await self.broadcast()
        if self._on_expert_left is not None:
            self._on_expert_left(self, name)

    # media

    async def offer(self, role: Role, sdp: str, width: int, height: int) -> str:
        """A participant's SDP offer: (re)build its peer and answer."""
        if self.state == SessionState.ENDED:
            raise ProtocolError("This session has ended.", code="wrong_state")
        seat = self._seats[role]
        if seat.channel is None or not seat.name:
            raise ProtocolError("Join the session before offering.", code="wrong_state")
        _check_offer_moment(seat, sdp)
        await self._drop_media(seat)
        if role == Role.CUSTOMER and width and height and self._feed.size is None:
            self._feed.size = (min(width, 1920) // 2 * 2, min(height, 1080) // 2 * 2)

        peer = Peer(
            f"{self.id}/{role}",
            ice_servers=ice_servers(self._config, f"server-{self.id}"),
            on_track=lambda track: self._inbound(seat, track),
            on_state=self._peer_state,
            max_sdp_bytes=self._config.max_sdp_bytes,
            ice_timeout_s=self._config.ice_timeout_s,
        )
        seat.peer = peer
        seat.outlets = self._outlets_for(role)
        voice = seat.outlets["audio"]
        assert isinstance(voice, FrameTrack)
        self._voices.attach(str(role), voice)
        seat.answering = True
        try:
            answer = await peer.answer(sdp, list(seat.outlets.values()))
        except Exception:
            if seat.peer is peer:
                await self._drop_media(seat)
            else:
                await peer.close()
            raise
        finally:
            seat.answering = False
        if seat.peer is not peer:  # ended, or left, while it was answered
            await peer.close()
            raise ProtocolError(
                "This offer was overtaken: the session ended or its participant "
                "left while it was answered.",
                code="wrong_state",
            )
        self.event("offer", role=str(role))
        if role == Role.TECHNICIAN and self.state == SessionState.QUEUED:
            raise ProtocolError("No technician is assigned yet.", code="wrong_state")
        if self.state == SessionState.WAITING and all(
            s.peer is not None for s in self._pair()
        ):
            await self._set_state(SessionState.CONNECTING)
        await self.broadcast()
        return answer

    async def candidate(self, role: Role, line: str, mid: str, index: int) -> None:
        """A trickled candidate for this role's peer (after its offer)."""
        peer = self._seats[role].peer
        if peer is None:
            raise ProtocolError(
                "Send the offer before its candidates.", code="wrong_state"
            )
        await peer.add_candidate(line, mid, index)

    def _outlets_for(self, role: Role) -> dict[str, MediaStreamTrack]:
        """The tracks the server sends to this role, in offer m-line order."""
        if role != Role.CUSTOMER:
            return {
                "video": self._feed.subscribe(f"{self.id}/{role}"),
                "audio": FrameTrack("audio", f"{self.id}/to-{role}"),
            }
        return {
            "audio": FrameTrack("audio", f"{self.id}/to-customer"),
            "video": FrameTrack("video", f"{self.id}/technician-camera"),
        }

    def _inbound(self, seat: _Seat, track: MediaStreamTrack) -> None:
        customer = self._seats[Role.CUSTOMER]
        label = f"{self.id}/{seat.role}-{track.kind}"

        def sink(frame: av.frame.Frame) -> None:
            if track.kind == "video" and seat.role == Role.CUSTOMER:
                assert isinstance(frame, av.VideoFrame)
                self.tools.put(frame)
                return
            if isinstance(frame, av.AudioFrame):
                self._voices.push(str(seat.role), frame)
                if self._mixer is not None:
                    self._mixer.push(str(seat.role), frame, self._media_clock())
            elif seat.role == Role.TECHNICIAN:
                # The customer sees the technician's camera (not the expert's).
                outlet = customer.outlets.get("video")
                if isinstance(outlet, FrameTrack):
                    outlet.push(frame)

        seat.sources.append(Source(label, track, sink))

    def _peer_state(self, peer: Peer, state: PeerState) -> None:
        asyncio.get_running_loop().create_task(self._peer_changed(peer, state))

    async def _peer_changed(self, peer: Peer, state: PeerState) -> None:
        seat = next((s for s in self._seats.values() if s.peer is peer), None)
        if seat is None or self.state == SessionState.ENDED:
            return
        self.event("media", role=str(seat.role), state=str(state))
        if state == PeerState.FAILED:
            await self._drop_media(seat)
            if seat.channel is None and seat.role == Role.EXPERT:
                await self.remove_expert("the expert's connection failed")
            elif seat.channel is None:
                self.end_soon(f"{seat.role} connection failed")
        elif state == PeerState.CONNECTED and all(
            s.peer is not None and s.peer.state == PeerState.CONNECTED
            for s in self._pair()
        ):
            if self._media_t0 is None:
                self._start_recording()
            self.was_live = True
            await self._set_state(SessionState.LIVE)
        await self.broadcast()

    async def _drop_media(self, seat: _Seat) -> None:
        peer, seat.peer = seat.peer, None
        sources, seat.sources = seat.sources, []
        voice = seat.outlets.get("audio")
        if isinstance(voice, FrameTrack):
            self._voices.detach(str(seat.role), voice)
        self._voices.forget(str(seat.role))
        seat.outlets = {}
        for source in sources:
            await source.stop()
        if peer is not None:
            await peer.close()

    def _start_recording(self) -> None:
        now = time.monotonic()
        self._media_t0 = now
        self._video_shift = int((now - self._t0) / VIDEO_TIME_BASE)
        self._timeline = self._open_timeline(now)
        if not self._config.record:
            return
        self._mixer = AudioMixer()
        self._feed.add_listener(self._record_packet)
        self._mix_task = asyncio.get_running_loop().create_task(
            self._mix(), name=f"mix {self.id}"
        )
        self.event("recording", state="started")

    def _record_packet(self, packet: av.Packet[Any]) -> None:
        # The feed's packets are shared with the technician's sender and stay on
        # the feed's clock; the recording gets its own copy on the recording's.
        if packet.pts is None or packet.pts < self._video_shift:
            return  # encoded before the recording started
        if self._recording is None:
            if not packet.is_keyframe or self._feed.size is None:
                return
            width, height = self._feed.size
            self._recording = Recording(
                self._directory,
                width=width,
                height=height,
                fragment_s=self._config.recording_fragment_s,
            )
        self._recording.put_video(shifted_copy(packet, self._video_shift))
        if self._recording.error is not None and not self._recording_error_told:
            # The recorder failed on its thread; tell both sides once (the
            # console shows it). The session itself goes on.
            self._recording_error_told = True
            self.event("recording", state="failed", error=self._recording.error)
            asyncio.get_running_loop().create_task(self.broadcast())

    async def _mix(self) -> None:
        assert self._mixer is not None
        while True:
            await asyncio.sleep(_MIX_EVERY_S)
            for frame in self._mixer.pull(self._media_clock()):
                if self._recording is not None:
                    self._recording.put_audio(frame)

    async def _set_state(self, state: SessionState) -> None:
        if state == self.state:
            return
        logger.info("session %s: %s -> %s", self.id, self.state, state)
        self.state = state
        self.event("state", state=str(state))

    # ending

    def end_soon(self, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(
                self.end(reason), name=f"end {self.id}"
            )

    async def end(self, reason: str) -> None:
        """End once: tell both sides, free the media, finalize the recording."""
        if self.state == SessionState.ENDED:
            return
        await self._set_state(SessionState.ENDED)
        self.end_reason = reason
        duration = round(self._media_clock(), 3)
        self.clock_at_end = duration
        self.event("end", reason=reason)
        text = encode(Type.ENDED, session=self.id, reason=reason)
        for seat in self._seats.values():
            if seat.grace is not None:
                seat.grace.cancel()
            if seat.channel is not None:
                await _send_quietly(seat.channel, text)
            await self._drop_media(seat)
        self._feed.remove_listener(self._record_packet)
        await self.tools.close()
        await self._feed.close()
        await self._voices.close()
        if self._mix_task is not None:
            self._mix_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mix_task
        if self._timeline is None:
            self._timeline = self._open_timeline(self._t0)
        self._timeline.close()
        if self._recording is not None:
            await self._recording.aclose(reason)
        else:
            # Ended before any media was recorded: say so, so that the start-up
            # sweep does not take the directory for a crash.
            write_meta(
                self._directory,
                {
                    "finalized": True,
                    "empty": True,
                    "reason": reason,
                    "recovered": False,
                },
            )
        logger.info("session %s: closed (%s) after %.1f s", self.id, reason, duration)
        self._on_closed(self)


def _check_offer_moment(seat: _Seat, sdp: str) -> None:
    """Refuse an offer while another is answered, and ICE restarts (see below)."""
    if seat.answering:
        raise ProtocolError(
            "An offer for this session is still being answered; wait for its answer.",
            code="wrong_state",
        )
    # aiortc cannot restart ICE on a live connection (aiortc issue 211); a page
    # that asks for one is told to make a new peer connection and offer again.
    if seat.peer is not None and seat.peer.is_ice_restart(sdp):
        raise ProtocolError(
            "ICE restart is not supported: close this peer connection and offer "
            "from a new one.",
            code="ice_restart_unsupported",
        )


async def _send_quietly(channel: Channel, text: str) -> None:
    try:
        await channel.send(text)
    except (ConnectionError, RuntimeError) as exc:
        logger.debug("channel %s: send failed: %s", channel.label, exc)


class SupportDesk:
    """The support sessions of this node and the technicians signed in to it."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.sessions: dict[str, SupportSession] = {}
        self.ended: dict[str, str] = {}
        self._consoles: dict[str, set[Channel]] = {}
        self.sessions_total = 0
        self.closed_listeners: list[Callable[[SupportSession], None]] = []
        self.expert_left_listeners: list[Callable[[SupportSession, str], None]] = []
        self.ended_by_technician: dict[str, str] = {}
        self.ended_clock: dict[str, float] = {}
        """Timeline clock at each ended session's end, for late events (disposition)."""
        self.console_relays: list[Callable[[str, str], None]] = []
        """Also told of session summaries (the cluster: consoles on other nodes)."""

    def get(self, session_id: str) -> SupportSession:
        session = self.sessions.get(session_id)
        if session is None:
            if session_id in self.ended:
                raise NotFound(
                    f"This session has ended: {self.ended[session_id]}.", code="ended"
                )
            raise NotFound("There is no such session.")
        return session

    def open(
        self,
        session_id: str,
        *,
        technician: str,
        customer: str,
        link_id: str,
        queue: str = "",
    ) -> SupportSession:
        """The session for this id, created on the first join."""
        if session_id in self.sessions:
            return self.sessions[session_id]
        if session_id in self.ended:
            raise NotFound(
                f"This session has ended: {self.ended[session_id]}.", code="ended"
            )
        if len(self.sessions) >= self._config.max_sessions:
            raise CapacityError("All our lines are busy. Please try again shortly.")
        session = SupportSession(
            session_id,
            technician=technician,
            customer=customer,
            link_id=link_id,
            config=self._config,
            on_closed=self._closed,
            queue=queue,
            on_expert_left=self._expert_left,
        )
        self.sessions[session_id] = session
        self.sessions_total += 1
        return session

    def _closed(self, session: SupportSession) -> None:
        self.sessions.pop(session.id, None)
        if session.technician:
            self.ended_by_technician[session.id] = session.technician
            self.ended_clock[session.id] = session.clock_at_end
        for done in (self.ended_by_technician, self.ended_clock):
            while len(done) > 10_000:
                done.pop(next(iter(done)))
        for listener in self.closed_listeners:
            listener(session)
        self.ended[session.id] = session.end_reason
        while len(self.ended) > 10_000:
            self.ended.pop(next(iter(self.ended)))
        text = encode(Type.ENDED, session=session.id, reason=session.end_reason)
        for name in {session.technician, session.expert} - {""}:
            for channel in self._consoles.get(name, set()):
                asyncio.get_running_loop().create_task(_send_quietly(channel, text))

    def _expert_left(self, session: SupportSession, name: str) -> None:
        for listener in self.expert_left_listeners:
            listener(session, name)

    def for_technician(self, name: str) -> list[SupportSession]:
        """The sessions `name` works in, as technician or as expert."""
        return [s for s in self.sessions.values() if s.role_of(name) is not None]

    async def console_joined(self, name: str, channel: Channel) -> None:
        self._consoles.setdefault(name, set()).add(channel)
        for session in self.for_technician(name):
            await _send_quietly(channel, encode(Type.SESSION, **session.summary()))

    def console_left(self, name: str, channel: Channel) -> None:
        channels = self._consoles.get(name)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self._consoles[name]
                for session in self.for_technician(name):
                    if session.expert == name:
                        session.expert_away()

    async def notify_console(self, session: SupportSession) -> None:
        text = encode(Type.SESSION, **session.summary())
        await self.tell_technician(session.technician, text)
        for relay in self.console_relays:
            relay(session.technician, text)

    async def tell_technician(self, name: str, text: str) -> None:
        """Send to every console the technician has open."""
        for channel in list(self._consoles.get(name, ())):
            await _send_quietly(channel, text)

    def consoles_online(self) -> list[str]:
        return sorted(self._consoles)

    async def close_all(self, reason: str) -> None:
        await asyncio.gather(
            *(s.end(reason) for s in list(self.sessions.values())),
            return_exceptions=True,
        )
