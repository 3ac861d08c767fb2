"""One aiortc peer connection between the server and one browser or client.

The browser always offers and the server answers, so the roles never collide. The
answer attaches the server's outbound tracks to the offered m-lines that want to
receive, in order, and prefers H.264 where a feed's packets are sent as they are.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import (
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)
from aiortc.sdp import SessionDescription

from server.errors import SdpError
from server.media.feed import PacketTrack
from server.media.ice import rtc_configuration

__all__ = ["Peer", "PeerState"]

logger = logging.getLogger(__name__)


class PeerState(enum.StrEnum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


TrackHandler = Callable[[MediaStreamTrack], None]
StateHandler = Callable[["Peer", PeerState], None]

_AIORTC_REFUSALS = (
    ValueError,
    KeyError,
    IndexError,
    AssertionError,
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)
"""What aiortc raises for descriptions it cannot take (it has no single base)."""

_H264_ONLY = [
    codec
    for codec in RTCRtpSender.getCapabilities("video").codecs
    if codec.mimeType in ("video/H264", "video/rtx")
]


def _check_offer(sdp: str, max_bytes: int) -> SessionDescription:
    if len(sdp) > max_bytes:
        raise SdpError(f"The offer is over {max_bytes} bytes.")
    if not sdp.startswith("v=0"):
        raise SdpError("The offer is not SDP (it must start with v=0).")
    try:
        parsed = SessionDescription.parse(sdp)
    except (ValueError, KeyError, IndexError) as exc:
        raise SdpError(f"The offer could not be read: {exc}") from None
    if not parsed.media:
        raise SdpError("The offer has no audio or video.")
    for media in parsed.media:
        # aiortc fails later, outside any handler, without these.
        if media.dtls is None or not media.dtls.fingerprints:
            raise SdpError(
                f"The offer's {media.kind} has no DTLS fingerprint or setup role."
            )
    return parsed


class Peer:
    """A server-side peer connection with named state and bounded lifetime."""

    open_count = 0
    """Peers created and not yet closed, in this process (a leak shows here)."""

    def __init__(
        self,
        label: str,
        *,
        ice_servers: Sequence[str],
        on_track: TrackHandler,
        on_state: StateHandler,
        max_sdp_bytes: int = 32 * 1024,
        ice_timeout_s: float = 20.0,
    ) -> None:
        self.label = label
        self.state = PeerState.NEW
        self._pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self._on_track = on_track
        self._on_state = on_state
        self._max_sdp = max_sdp_bytes
        self._ice_timeout_s = ice_timeout_s
        self._timeout: asyncio.TimerHandle | None = None
        self._pc.on("track", self._track)
        self._pc.on("connectionstatechange", self._connection_state)
        self._counted = True
        Peer.open_count += 1
        logger.info("peer %s: created", label)

    def _set_state(self, state: PeerState) -> None:
        if state == self.state or self.state == PeerState.CLOSED:
            return
        logger.info("peer %s: %s -> %s", self.label, self.state, state)
        self.state = state
        if state != PeerState.CONNECTING and self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        self._on_state(self, state)

    def _track(self, track: MediaStreamTrack) -> None:
        logger.debug("peer %s: %s track arrived", self.label, track.kind)
        self._on_track(track)

    async def _connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            self._set_state(PeerState.CONNECTED)
        elif state == "failed":
            self._set_state(PeerState.FAILED)
        elif state == "closed":
            self._set_state(PeerState.CLOSED)

    def _ice_timed_out(self) -> None:
        self._timeout = None
        if self.state in (PeerState.NEW, PeerState.CONNECTING):
            logger.info(
                "peer %s: not connected after %.0f s", self.label, self._ice_timeout_s
            )
            self._set_state(PeerState.FAILED)

    async def answer(self, offer_sdp: str, outbound: Sequence[MediaStreamTrack]) -> str:
        """Take the browser's offer and return the server's answer SDP.

        One transceiver per offered m-line is made first, in order, so that codec
        preferences apply to the negotiation itself: each outbound track goes to the
        next m-line of its kind that wants to receive, and a `PacketTrack`'s m-line
        is H.264-only (its packets are sent as they are).
        """
        parsed = _check_offer(offer_sdp, self._max_sdp)
        pending = list(outbound)
        for media in parsed.media:
            if media.kind not in ("audio", "video"):
                continue
            wants = media.direction in ("recvonly", "sendrecv", None)
            sends = media.direction in ("sendonly", "sendrecv", None)
            track = next((t for t in pending if t.kind == media.kind), None)
            if not wants:
                track = None
            if track is not None:
                pending.remove(track)
            direction = {
                (True, True): "sendrecv",
                (True, False): "sendonly",
                (False, True): "recvonly",
                (False, False): "inactive",
            }[(track is not None, sends)]
            transceiver = self._pc.addTransceiver(media.kind, direction=direction)
            if isinstance(track, PacketTrack):
                if not any(c.name == "H264" for c in media.rtp.codecs):
                    raise SdpError("The offer cannot receive H.264 video.")
                transceiver.setCodecPreferences(_H264_ONLY)
                track.attach(transceiver.sender)
            if track is not None:
                transceiver.sender.replaceTrack(track)

        try:
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=offer_sdp, type="offer")
            )
            answer = await self._pc.createAnswer()
            await self._pc.setLocalDescription(answer)
        except _AIORTC_REFUSALS as exc:
            raise SdpError(
                f"The offer was refused: {exc or type(exc).__name__}"
            ) from None

        self._set_state(PeerState.CONNECTING)
        if self._timeout is None and self.state == PeerState.CONNECTING:
            self._timeout = asyncio.get_running_loop().call_later(
                self._ice_timeout_s, self._ice_timed_out
            )
        return str(self._pc.localDescription.sdp)

    async def close(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        for transceiver in self._pc.getTransceivers():
            track = transceiver.sender.track
            if track is not None:
                track.stop()
        try:
            await self._pc.close()
        except Exception:
            logger.exception("peer %s: close failed", self.label)
        if self._counted:
            self._counted = False
            Peer.open_count -= 1
        if self.state != PeerState.CLOSED:
            logger.info("peer %s: %s -> closed", self.label, self.state)
            self.state = PeerState.CLOSED
