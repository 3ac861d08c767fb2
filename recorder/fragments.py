"""Writes the live recording as fragmented MP4, on the writer thread.

Video arrives already encoded (H.264 Annex-B, SPS/PPS in band on keyframes) and is
muxed as is; audio arrives as mixed s16 mono frames and is encoded to AAC here.
Both carry session-clock timestamps, which the file keeps: the finalizing remux
(:mod:`recorder.remux`) moves them to start at zero.

Choices that keep a ``kill -9`` from costing more than the last fragment:

* ``frag_keyframe`` and ``frag_duration``: a fragment is cut at each keyframe and
  at least every ``fragment_s``, and ``flush_packets`` hands it to the OS at once.
* ``delay_moov`` instead of ``empty_moov``: the moov is written with the first
  fragment, so a track that starts late keeps its start time (with ``empty_moov``
  the muxer silently moves each track's first sample to zero). The muxer holds
  that first fragment until every track has a sample, so the audio track is
  padded with silence: it never trails the video by more than ``AUDIO_TRAIL_S``,
  even when nobody has spoken yet.
* ``max_interleave_delta``: FFmpeg's interleaver would otherwise hold up to 10 s
  of video while waiting for audio.
* The muxer needs the avcC parameters before its header; PyAV takes them from the
  first packet, which the backlog makes sure is a keyframe carrying SPS/PPS.

Each video packet is held until the next one arrives, so that it is written with
its real duration rather than one the muxer guesses.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.stream import Stream

from .backlog import VideoItem

__all__ = [
    "AUDIO_RATE",
    "AUDIO_TIME_BASE",
    "VIDEO_TIME_BASE",
    "FragmentWriter",
]

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90000)
AUDIO_RATE = 48000
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
AUDIO_BIT_RATE = 64000
AUDIO_TRAIL_S = 1.0
MAX_INTERLEAVE_DELTA_S = 1.0
DEFAULT_FRAME_TICKS = 3000  # 1/30 s, for a last frame with nothing after it
_SILENCE_CHUNK = 4800  # samples per encoded silence frame

MOVFLAGS = "frag_keyframe+delay_moov+default_base_moof"


class FragmentWriter:
    """Muxes video packets and encodes audio frames into ``path``.

    Not thread-safe: one thread calls every method. The file is created with the
    first keyframe; video before it is ignored.
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        width: int,
        height: int,
        fragment_s: float,
        audio: bool,
    ) -> None:
        self.path = path
        self.name = name
        self.width = width
        self.height = height
        self.fragment_s = fragment_s
        self.audio = audio

        self._container: OutputContainer | None = None
        self._video: Stream | None = None
        self._aac: AudioStream | None = None
        self._held: VideoItem | None = None
        self._last_duration = DEFAULT_FRAME_TICKS
        self._audio_next = 0  # next sample position to encode, session clock
        self.video_packets = 0
        self.audio_samples = 0

    @property
    def opened(self) -> bool:
        return self._container is not None

    def write_video(self, item: VideoItem) -> None:
        if self._container is None:
            if not item.keyframe:
                return
            self._open(item)

        held = self._held
        if held is not None:
            if item.dts <= held.dts:
                logger.debug("%s: video dts %d not increasing", self.name, item.dts)
                return
            self._last_duration = item.dts - held.dts
            self._mux_video(held, self._last_duration)
        self._held = item

        if self._aac is not None:
            self._pad_audio(
                _ticks_to_samples(item.pts) - round(AUDIO_TRAIL_S * AUDIO_RATE)
            )

    def write_audio(self, frame: av.AudioFrame) -> None:
        """Encode ``frame`` (s16 mono 48 kHz, pts in 1/48000) where it belongs."""
        if self._aac is None or frame.pts is None:
            return

        samples = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
        start = _audio_pts(frame)
        if start < self._audio_next:
            # Already covered (by silence, or it predates the first keyframe).
            samples = samples[self._audio_next - start :]
            start = self._audio_next
        if not len(samples):
            return

        self._pad_audio(start)
        self._encode_audio(samples)

    def close(self) -> None:
        """Write what is held, pad the audio to the video's end, close the file."""
        if self._container is None:
            return
        try:
            held = self._held
            if held is not None:
                self._mux_video(held, self._last_duration)
                self._held = None
                if self._aac is not None:
                    end = held.pts + self._last_duration
                    self._pad_audio(_ticks_to_samples(end))
            if self._aac is not None:
                for packet in self._aac.encode(None):
                    self._container.mux(packet)
        except Exception:
            self.abandon()
            raise

        container, self._container = self._container, None
        container.close()

    def abandon(self) -> None:
        """Close the file after a failure, ignoring what else fails."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception as exc:
                logger.debug("%s: closing after failure: %s", self.name, exc)

    def _open(self, first: VideoItem) -> None:
        options = {
            "movflags": MOVFLAGS,
            "frag_duration": str(round(self.fragment_s * 1_000_000)),
            "flush_packets": "1",
            "max_interleave_delta": str(round(MAX_INTERLEAVE_DELTA_S * 1_000_000)),
        }
        container = av.open(str(self.path), "w", format="mp4", options=options)
        try:
            self._video = container.add_mux_stream(
                "h264",
                width=self.width,
                height=self.height,
                time_base=VIDEO_TIME_BASE,
            )
            if self.audio:
                aac = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
                aac.bit_rate = AUDIO_BIT_RATE
                self._aac = aac
        except Exception:
            container.close()
            raise

        self._container = container
        self._audio_next = _ticks_to_samples(first.pts)
        logger.debug("%s: file opened at pts %d", self.name, first.pts)

    def _mux_video(self, item: VideoItem, duration: int) -> None:
        assert self._container is not None and self._video is not None
        packet = av.Packet(item.data)
        packet.pts = item.pts
        packet.dts = item.dts
        packet.duration = duration
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = item.keyframe
        packet.stream = self._video
        self._container.mux(packet)
        self.video_packets += 1

    def _pad_audio(self, until: int) -> None:
        """Encode silence from the audio's current end up to ``until``."""
        while self._audio_next < until:
            count = min(until - self._audio_next, _SILENCE_CHUNK)
            self._encode_audio(np.zeros(count, dtype=np.int16))

    def _encode_audio(self, samples: npt.NDArray[np.int16]) -> None:
        assert self._container is not None and self._aac is not None
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._audio_next
        frame.time_base = AUDIO_TIME_BASE
        for packet in self._aac.encode(frame):
            self._container.mux(packet)

        self._audio_next += len(samples)
        self.audio_samples += len(samples)


def _ticks_to_samples(ticks: int) -> int:
    return round(ticks * AUDIO_RATE / VIDEO_TIME_BASE.denominator)


def _audio_pts(frame: av.AudioFrame) -> int:
    assert frame.pts is not None
    if frame.time_base is None or frame.time_base == AUDIO_TIME_BASE:
        return frame.pts
    return round(frame.pts * frame.time_base / AUDIO_TIME_BASE)
