"""A feed: frames in, encoded once with PyAV, the same packets out to every receiver.

`Feed.push` takes decoded frames on the loop thread; one encoder task turns the newest
pending frame into H.264 (libx264, constrained baseline, in-band SPS/PPS) on a worker
thread, and hands each `av.Packet` to every `PacketTrack` (aiortc packetizes packets
as they are, FACTS.md) and to packet listeners such as the recorder. A receiver's
PLI/FIR becomes `request_keyframe`, coalesced to one forced keyframe per
`keyframe_min_gap_s` and never dropped.

aiortc drops keyframe requests on the pre-encoded path; `PacketTrack.attach` reroutes
its sender's private `_send_keyframe` to the feed. aiortc is pinned exactly and
tests/media/test_feed.py fails if that hook stops being called.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fractions
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from av.video.frame import PictureType

__all__ = ["VIDEO_TIME_BASE", "Feed", "PacketTrack", "QueuedPackets", "shifted_copy"]

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
_TRACK_QUEUE_PACKETS = 30
"""Packets one receiver may lag behind before it skips to the next keyframe."""

PacketListener = Callable[["av.Packet[Any]"], None]


class QueuedPackets(MediaStreamTrack):
    """A receiver's bounded queue of packets encoded once for many (aiortc sends
    an `av.Packet` as it is); `stop` leaves the feed and wakes a waiting `recv`."""

    feed: Any
    """What the packets come from: it has `unsubscribe(track)`."""

    def __init__(self, label: str, size: int) -> None:
        super().__init__()
        self.label = label
        self._queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue(size)

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        if self.readyState == "live":
            self.feed.unsubscribe(self)
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
        super().stop()


def shifted_copy(packet: av.Packet[Any], ticks: int) -> av.Packet[Any]:
    """A private copy for a recorder, moved `ticks` earlier (muxing rewrites a
    packet's fields, and the original goes to every receiver too)."""
    copy = av.Packet(bytes(packet))
    copy.pts = None if packet.pts is None else packet.pts - ticks
    copy.dts = None if packet.dts is None else packet.dts - ticks
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    return copy


class PacketTrack(QueuedPackets):
    """One receiver's view of a feed: a bounded queue of shared packets."""

    kind = "video"

    def __init__(self, feed: Feed, label: str) -> None:
        super().__init__(label, _TRACK_QUEUE_PACKETS)
        self.feed = feed
        self._wait_keyframe = True
        self.skipped = 0

    def attach(self, sender: RTCRtpSender) -> None:
        """Send this receiver's keyframe requests (PLI/FIR) to the shared encoder."""
        label = self.label
        feed = self.feed

        def keyframe_requested() -> None:
            feed.request_keyframe(f"receiver {label}")

        sender._send_keyframe = keyframe_requested  # type: ignore[method-assign]

    def offer(self, packet: av.Packet[Any]) -> None:
        if self.readyState != "live":
            return
        if self._wait_keyframe:
            if not packet.is_keyframe:
                return
            self._wait_keyframe = False
        if self._queue.full():
            # This receiver is stalled: drop what it holds and resume at a keyframe,
            # so that the others never wait for it.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.skipped += 1
            self._wait_keyframe = True
            self.feed.request_keyframe(f"receiver {self.label} lagging")
            return
        self._queue.put_nowait(packet)


class Feed:
    """Encode once, send to many."""

    def __init__(
        self,
        label: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        bitrate: int = 1_200_000,
        fps_hint: int = 30,
        keyframe_interval_s: float = 2.0,
        keyframe_min_gap_s: float = 0.5,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.label = label
        self._clock = clock
        self._bitrate = bitrate
        self._fps_hint = fps_hint
        self._gop = max(1, int(keyframe_interval_s * fps_hint))
        self._min_gap = keyframe_min_gap_s
        self.size = size
        self.prepare: Callable[[av.VideoFrame], av.VideoFrame] | None = None
        """Runs on the worker thread on each frame before it is encoded (a stage)."""
        self.on_wanted: Callable[[], None] | None = None
        """Called when a receiver or listener comes (a producer that idles wakes)."""
        self._tracks: set[PacketTrack] = set()
        self._listeners: list[PacketListener] = []
        self._pending: av.VideoFrame | None = None
        self._pending_at: float | None = None
        self._wake = asyncio.Event()
        self._codec: av.VideoCodecContext | None = None
        self._last_pts = -1
        self._last_forced = -1e9
        self._keyframe_due: float | None = None
        self._closed = False
        self.frames_in = 0
        self.frames_encoded = 0
        self.keyframes_forced = 0
        self.last_keyframe_at: float | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"feed-{label}"
        )
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"feed {label}"
        )
        logger.info("feed %s: created", label)

    # receivers

    def subscribe(self, label: str) -> PacketTrack:
        track = PacketTrack(self, label)
        self._tracks.add(track)
        self.request_keyframe(f"receiver {label} joined")
        self._wanted_now()
        return track

    @property
    def wanted(self) -> bool:
        """Whether anyone takes the packets (a receiver or a listener)."""
        return bool(self._tracks or self._listeners)

    def _wanted_now(self) -> None:
        if self.on_wanted is not None:
            self.on_wanted()

    def unsubscribe(self, track: PacketTrack) -> None:
        self._tracks.discard(track)

    @property
    def receivers(self) -> int:
        return len(self._tracks)

    def add_listener(self, listener: PacketListener) -> None:
        self._listeners.append(listener)
        self._wanted_now()
        # A recorder starts at its first keyframe: do not make it wait out the
        # PLI coalescing gap (a listener is added once, not in storms).
        self.request_keyframe("listener added", at_once=True)

    def remove_listener(self, listener: PacketListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def request_keyframe(self, why: str, *, at_once: bool = False) -> None:
        """Force a keyframe soon: now, or `keyframe_min_gap_s` after the last one
        (`at_once` skips that gap)."""
        now = self._clock()
        due = now if at_once else max(now, self._last_forced + self._min_gap)
        if self._keyframe_due is None or due < self._keyframe_due:
            self._keyframe_due = due
        logger.debug("feed %s: keyframe requested (%s)", self.label, why)

    # frames in

    def push(self, frame: av.VideoFrame, at: float | None = None) -> None:
        """Offer a decoded frame; if the encoder is busy the older pending one goes.

        `at` (on the feed's clock) is the moment the frame shows, e.g. when a
        compositor sampled its cameras; by default, when the encoder takes it.
        """
        if self._closed:
            return
        self.frames_in += 1
        self._pending = frame
        self._pending_at = at
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                frame, self._pending = self._pending, None
                at, self._pending_at = self._pending_at, None
                if frame is None or not (self._tracks or self._listeners):
                    # Nobody receives (a demo room with no viewers): encode nothing;
                    # the first subscriber asks for a keyframe anyway.
                    continue
                now = self._clock()
                shown = now if at is None else min(at, now)
                pts = max(int(shown / VIDEO_TIME_BASE), self._last_pts + 1)
                self._last_pts = pts
                force = self._keyframe_due is not None and now >= self._keyframe_due
                if force:
                    self._keyframe_due = None
                    self._last_forced = now
                    self.keyframes_forced += 1
                elif self._keyframe_due is not None:
                    # A coalesced request is waiting for its slot: come back then.
                    loop.call_at(loop.time() + self._keyframe_due - now, self._wake.set)
                packets = await loop.run_in_executor(
                    self._executor, self._encode, frame, pts, force
                )
                self._deliver(packets, now)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("feed %s: encoder failed", self.label)

    def _deliver(self, packets: list[av.Packet[Any]], now: float) -> None:
        for packet in packets:
            if packet.is_keyframe:
                self.last_keyframe_at = now
            for track in list(self._tracks):
                track.offer(packet)
            for listener in list(self._listeners):
                try:
                    listener(packet)
                except Exception:
                    logger.exception("feed %s: listener failed", self.label)
                    self.remove_listener(listener)

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width = width
        codec.height = height
        codec.pix_fmt = "yuv420p"
        codec.time_base = VIDEO_TIME_BASE
        codec.framerate = fractions.Fraction(self._fps_hint, 1)
        codec.bit_rate = self._bitrate
        codec.profile = "Constrained Baseline"
        codec.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "level": "31",
            "g": str(self._gop),
            "bf": "0",
            "x264-params": f"keyint={self._gop}:min-keyint={self._gop}:scenecut=0",
        }
        codec.open()
        logger.info("feed %s: encoder opened at %dx%d", self.label, width, height)
        return codec

    def _encode(
        self, frame: av.VideoFrame, pts: int, force: bool
    ) -> list[av.Packet[Any]]:
        """Runs on the feed's worker thread."""
        if self.prepare is not None:
            frame = self.prepare(frame)
        if self.size is None:
            self.size = (frame.width, frame.height)
        width, height = self.size
        if self._codec is None:
            self._codec = self._open(width, height)
        if (frame.width, frame.height) != self.size or frame.format.name != "yuv420p":
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        frame.pict_type = PictureType.I if force else PictureType.NONE
        packets = list(self._codec.encode(frame))
        self.frames_encoded += 1
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
        return packets

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for track in list(self._tracks):
            track.stop()
        self._listeners.clear()
        self._executor.shutdown(wait=True)
        self._codec = None
        logger.info(
            "feed %s: closed after %d frames (%d forced keyframes)",
            self.label,
            self.frames_encoded,
            self.keyframes_forced,
        )
