"""Synthetic media for tests: camera tracks that draw a colour marker, a tone.

A receiver decodes the marker back with `marker_colour`, so tests can tell which
camera a frame came from after any number of encodes.
"""

from __future__ import annotations

import fractions
import math

import av
import numpy as np
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

__all__ = ["MARKERS", "ColourCamera", "ToneTrack", "marker_colour", "region_colour"]

MARKERS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 30),
}
"""Marker colours (RGB), far apart so that encoding cannot confuse them."""


class ColourCamera(VideoStreamTrack):
    """A camera whose frames are one colour with a moving bar, at 30 fps; with
    `right`, the right half is that colour instead (for zoom tests)."""

    def __init__(
        self, colour: str, width: int = 640, height: int = 480, right: str = ""
    ) -> None:
        super().__init__()
        self.colour = colour
        self.right = right
        self.width = width
        self.height = height
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = np.empty((self.height, self.width, 3), np.uint8)
        image[:] = MARKERS[self.colour]
        if self.right:
            image[:, self.width // 2 :] = MARKERS[self.right]
        x = (self.sent * 8) % max(1, self.width - 16)
        image[:, x : x + 16] = 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.sent += 1
        return frame


class ToneTrack(AudioStreamTrack):
    """A sine tone, 20 ms frames of s16 mono at 48 kHz."""

    def __init__(self, hz: float = 440.0) -> None:
        super().__init__()
        self.hz = hz
        self._samples = 0

    async def recv(self) -> av.AudioFrame:
        await super().recv()  # paces to real time
        count = 960
        t = (np.arange(count) + self._samples) / 48_000
        wave = (0.3 * 32767 * np.sin(2 * math.pi * self.hz * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            wave.reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 48_000
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, 48_000)
        self._samples += count
        return frame


def marker_colour(frame: av.VideoFrame) -> str:
    """The name of the marker colour nearest to the frame's median colour."""
    image = frame.to_ndarray(format="rgb24")
    h, w = image.shape[:2]
    patch = image[h // 4 : 3 * h // 4 : 4, : w // 8].reshape(-1, 3)
    median = np.median(patch, axis=0)
    return min(
        MARKERS, key=lambda name: float(np.sum((np.array(MARKERS[name]) - median) ** 2))
    )


def region_colour(
    frame: av.VideoFrame, x0: float, y0: float, x1: float, y1: float
) -> str:
    """The marker colour of a region given in fractions of the frame."""
    image = frame.to_ndarray(format="rgb24")
    h, w = image.shape[:2]
    patch = image[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)]
    crop = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(patch, np.uint8), format="rgb24"
    )
    return marker_colour(crop)
