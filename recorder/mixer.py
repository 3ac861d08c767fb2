"""Mixes the participants' audio into one track on the session clock.

Each input (a participant's microphone, named by the caller) arrives as decoded
frames stamped with their arrival time on the session clock. An input keeps its
own next-sample position: while a frame arrives within ``resync_s`` of that
position it is placed right after the previous one, so network jitter does not
chop the sound. A frame arriving further away resyncs the input to its arrival:
a late one leaves silence behind it, an early one loses the part that would
overlap what is already placed.

:meth:`AudioMixer.pull` hands out the sum of all inputs, clipped to 16 bits, in
frames of ``frame_samples`` up to ``latency_s`` before "now", the time a slow
input is given to arrive. Samples arriving for time already pulled are dropped.

The mixer has no clock of its own: time comes only from the arguments, so the
same calls always give the same output.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

__all__ = ["AudioMixer"]

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 48000
DEFAULT_FRAME_SAMPLES = 960  # 20 ms at 48 kHz
DEFAULT_LATENCY_S = 0.2
DEFAULT_RESYNC_S = 0.08
DEFAULT_MAX_AHEAD_S = 5.0

_EPSILON_SAMPLES = 1e-6
_INT16_MIN = -32768
_INT16_MAX = 32767

Samples = npt.NDArray[np.int32]


@dataclass
class _Input:
    resampler: av.AudioResampler | None = None
    source_format: tuple[str, str, int] | None = None
    next_pos: int | None = None


class AudioMixer:
    """Sums named audio inputs into s16 frames on the session clock.

    Positions are in samples since the session clock's zero; output frames carry
    them as ``pts`` with ``time_base = 1/sample_rate``.
    """

    def __init__(
        self,
        *,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        layout: str = "mono",
        frame_samples: int = DEFAULT_FRAME_SAMPLES,
        latency_s: float = DEFAULT_LATENCY_S,
        resync_s: float = DEFAULT_RESYNC_S,
        max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
        start_s: float = 0.0,
    ) -> None:
        if sample_rate <= 0 or frame_samples <= 0:
            raise ValueError("sample_rate and frame_samples must be positive")
        if latency_s < 0 or resync_s < 0 or max_ahead_s <= latency_s:
            raise ValueError("need 0 <= latency_s < max_ahead_s and resync_s >= 0")

        self.sample_rate = sample_rate
        self.layout = layout
        self.channels = av.AudioLayout(layout).nb_channels
        self.frame_samples = frame_samples
        self.latency_s = latency_s
        self.time_base = Fraction(1, sample_rate)

        self._resync = round(resync_s * sample_rate)
        self._max_ahead = round(max_ahead_s * sample_rate)
        self._inputs: dict[str, _Input] = {}

        # The sum of everything placed so far, from _pulled onwards.
        self._pulled = self._position(start_s)
        self._mix: Samples = np.zeros((self.channels, 0), dtype=np.int32)

    @property
    def pulled_s(self) -> float:
        """Session time up to which audio has been handed out."""
        return self._pulled / self.sample_rate

    @property
    def buffered_s(self) -> float:
        """How far beyond ``pulled_s`` the mix holds samples (at most max_ahead_s)."""
        return float(self._mix.shape[1] / self.sample_rate)

    @property
    def inputs(self) -> list[str]:
        return list(self._inputs)

    def push(self, name: str, frame: av.AudioFrame, arrival_s: float) -> None:
        """Place ``frame`` of input ``name``, which arrived at ``arrival_s``."""
        state = self._inputs.get(name)
        if state is None:
            state = self._inputs[name] = _Input()

        arrival = self._position(arrival_s)
        for samples in self._convert(state, frame):
            self._place(name, state, samples, arrival)
            arrival += samples.shape[1]

    def remove(self, name: str) -> None:
        """Forget input ``name``; what it already placed is still mixed."""
        self._inputs.pop(name, None)

    def pull(self, now_s: float) -> list[av.AudioFrame]:
        """Mixed frames covering ``[pulled_s, now_s - latency_s)``, in order."""
        end = self._position(now_s - self.latency_s)
        count = (end - self._pulled) // self.frame_samples
        if count <= 0:
            return []

        total = count * self.frame_samples
        block = self._take(total)
        mixed = np.clip(block, _INT16_MIN, _INT16_MAX).astype(np.int16)

        frames = []
        for index in range(count):
            start = index * self.frame_samples
            chunk = mixed[:, start : start + self.frame_samples]
            frames.append(self._frame(chunk, self._pulled + start))
        self._pulled += total
        return frames

    def _position(self, seconds: float) -> int:
        if not math.isfinite(seconds):
            raise ValueError(f"not a time: {seconds!r}")
        # Float times land a hair below a sample boundary: 0.7 - 0.2 is 0.4999...
        return math.floor(seconds * self.sample_rate + _EPSILON_SAMPLES)

    def _convert(self, state: _Input, frame: av.AudioFrame) -> list[Samples]:
        """The frame as (channels, n) arrays in our format, resampled if needed."""
        if frame.sample_rate <= 0:
            raise ValueError("audio frame without a sample rate")
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        target = ("s16", self.layout, self.sample_rate)
        if source == target:
            return [self._unpack(frame)]

        if state.resampler is None or state.source_format != source:
            state.resampler = av.AudioResampler(
                format="s16", layout=self.layout, rate=self.sample_rate
            )
            state.source_format = source
        return [self._unpack(out) for out in state.resampler.resample(frame)]

    def _unpack(self, frame: av.AudioFrame) -> Samples:
        # Packed s16 comes as one row of interleaved samples.
        interleaved = frame.to_ndarray().reshape(-1, self.channels)
        return np.ascontiguousarray(interleaved.T, dtype=np.int32)

    def _place(self, name: str, state: _Input, samples: Samples, arrival: int) -> None:
        """Add ``samples`` to the mix at the input's position, or resync it."""
        count = samples.shape[1]
        start = arrival if state.next_pos is None else state.next_pos

        if state.next_pos is not None and abs(arrival - state.next_pos) > self._resync:
            logger.debug("%s: resync by %+d samples", name, arrival - state.next_pos)
            if arrival > state.next_pos:
                start = arrival
            else:
                # Early: keep only what lies beyond the samples already placed.
                skip = min(state.next_pos - arrival, count)
                samples = samples[:, skip:]
                count -= skip
        if count == 0:
            return
        state.next_pos = start + count

        # Too late for what was pulled, or too far ahead to keep.
        low = max(start, self._pulled)
        high = min(start + count, self._pulled + self._max_ahead)
        if low < high:
            self._ensure(high - self._pulled)
            window = self._mix[:, low - self._pulled : high - self._pulled]
            window += samples[:, low - start : high - start]
        elif start < self._pulled:
            logger.debug("%s: %d samples arrived too late", name, count)

    def _ensure(self, length: int) -> None:
        have = self._mix.shape[1]
        if length <= have:
            return
        size = min(max(length, 2 * have), self._max_ahead)
        grown = np.zeros((self.channels, size), dtype=np.int32)
        grown[:, :have] = self._mix
        self._mix = grown

    def _take(self, total: int) -> Samples:
        """The first ``total`` mixed samples, zero-padded; drops them from the mix."""
        block = np.zeros((self.channels, total), dtype=np.int32)
        have = min(total, self._mix.shape[1])
        block[:, :have] = self._mix[:, :have]
        self._mix = self._mix[:, have:]
        return block

    def _frame(self, chunk: npt.NDArray[np.int16], pts: int) -> av.AudioFrame:
        packed = np.ascontiguousarray(chunk.T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=self.layout)
        frame.sample_rate = self.sample_rate
        frame.pts = pts
        frame.time_base = self.time_base
        return frame
