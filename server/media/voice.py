"""A voice feed: one microphone encoded once to Opus, the same packets to everyone.

aiortc encodes Opus once per receiver when its tracks yield decoded frames. For a
room with many viewers that is one encoder per viewer; `VoiceFeed` instead encodes
the presenter's microphone once with PyAV (libopus, 20 ms frames, 48 kHz mono) and
hands each `av.Packet` to every `VoicePacketTrack`, which aiortc packetizes as is
(FACTS.md). Timestamps count samples, so a microphone that pauses or is replaced
continues the same stream for the receivers.
"""

from __future__ import annotations

import fractions
import logging
from collections.abc import Callable
from typing import Any

import av

from server.media.feed import QueuedPackets

__all__ = ["AUDIO_TIME_BASE", "VoiceFeed", "VoicePacketTrack"]

logger = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
_FRAME_SAMPLES = 960
"""20 ms at 48 kHz: Opus's usual frame for speech."""
_TRACK_QUEUE_PACKETS = 25
"""Half a second of audio one receiver may lag before its oldest packets go."""
_BITRATE = 48_000
"""Opus bitrate, bits per second: clear speech and product sounds, mono."""

AudioListener = Callable[[av.AudioFrame], None]


class VoicePacketTrack(QueuedPackets):
    """One receiver's view of a voice feed: a bounded queue of shared packets."""

    kind = "audio"

    def __init__(self, feed: VoiceFeed, label: str) -> None:
        super().__init__(label, _TRACK_QUEUE_PACKETS)
        self.feed = feed
        self.dropped = 0

    def offer(self, packet: av.Packet[Any]) -> None:
        if self.readyState != "live":
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(packet)


class VoiceFeed:
    """Decoded audio in (any format), Opus packets out, encoded once."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._tracks: set[VoicePacketTrack] = set()
        self._listeners: list[AudioListener] = []
        self._resampler = av.AudioResampler(
            format="s16", layout="mono", rate=AUDIO_RATE, frame_size=_FRAME_SAMPLES
        )
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.sample_rate = AUDIO_RATE
        self._codec.layout = "mono"
        self._codec.format = "s16"
        self._codec.bit_rate = _BITRATE
        self._codec.open()
        self._samples = 0
        self.frames_in = 0
        self.packets_out = 0
        self._closed = False
        logger.info("voice %s: created", label)

    def subscribe(self, label: str) -> VoicePacketTrack:
        track = VoicePacketTrack(self, label)
        self._tracks.add(track)
        return track

    def unsubscribe(self, track: VoicePacketTrack) -> None:
        self._tracks.discard(track)

    @property
    def receivers(self) -> int:
        return len(self._tracks)

    def add_listener(self, listener: AudioListener) -> None:
        """`listener` gets every 20 ms frame (s16 mono 48 kHz) before encoding."""
        self._listeners.append(listener)

    def remove_listener(self, listener: AudioListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def push(self, frame: av.AudioFrame) -> None:
        """Encode one decoded frame (about 50 µs of libopus for 20 ms of speech)."""
        if self._closed:
            return
        self.frames_in += 1
        frame.pts = None
        for chunk in self._resampler.resample(frame):
            for listener in list(self._listeners):
                listener(chunk)
            chunk.pts = None
            for packet in self._codec.encode(chunk):
                # Our own sample count: libopus starts at minus its look-ahead.
                packet.pts = self._samples
                packet.dts = self._samples
                packet.time_base = AUDIO_TIME_BASE
                self._samples += _FRAME_SAMPLES
                self.packets_out += 1
                for track in list(self._tracks):
                    track.offer(packet)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for track in list(self._tracks):
            track.stop()
        self._listeners.clear()
        logger.info("voice %s: closed after %d packets", self.label, self.packets_out)
