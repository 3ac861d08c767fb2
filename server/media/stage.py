"""A stage: what the technician and the recording see of the customer's camera.

The stage sits between the customer's decoded frames and the session's feed::

    customer camera ─put─> Stage ─push─> Feed (encode once) ─┬─> technician
                           │  latest frame kept for          └─> recording
                           │  freeze and snapshot
                           └─ Look: zoom, frozen still, strokes, pointer, pause slate

The feed's encoder is the only one: the technician's view and the recording are the
same pixels, so what the technician saw is what was recorded, annotations included.
Compositing runs on the feed's worker thread (`Feed.prepare`), never on the loop.
The common case (no tool in use) passes the decoded frame through untouched.

While a still is frozen or the camera is paused, the customer's frames stop going
out; a tick pushes the still (with its strokes) or the slate at `tick_fps`, so the
recording keeps its pace and shows the gap as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

import av
import cv2
import numpy as np

from server.media.annotation import Image, Stroke, draw_pointer, draw_strokes
from server.media.feed import Feed
from server.media.program import Zoom, bgr, draw_label

__all__ = ["Look", "Stage"]

logger = logging.getLogger(__name__)

POINTER_TIMEOUT_S = 2.0
"""A pointer not moved for this long disappears, seconds."""
TICK_FPS = 15
"""Frames per second pushed while frozen or paused."""


@dataclass(frozen=True)
class Look:
    """Everything that changes the picture; replaced whole on each change."""

    zoom: Zoom | None = None
    still: av.VideoFrame | None = None
    strokes: tuple[Stroke, ...] = ()
    pointer: tuple[float, float] | None = None
    pointer_at: float = 0.0
    slate: str = ""

    @property
    def held(self) -> bool:
        """True while the tick, not the camera, drives the feed."""
        return bool(self.slate) or self.still is not None


class Stage:
    def __init__(
        self,
        label: str,
        feed: Feed,
        *,
        tick_fps: int = TICK_FPS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.feed = feed
        self.latest: av.VideoFrame | None = None
        """The newest decoded customer frame, at the size it was received."""
        self.look = Look()
        self._clock = clock
        self._period = 1.0 / tick_fps
        self._tick: asyncio.Task[None] | None = None
        self._cache: tuple[Look, tuple[int, int], av.VideoFrame] | None = None
        feed.prepare = self._compose

    # frames in

    def put(self, frame: av.VideoFrame) -> None:
        self.latest = frame
        if not self.look.held:
            self.feed.push(frame)

    # what the picture shows

    def _set(self, look: Look) -> None:
        self.look = look
        if look.held and self._tick is None:
            self._tick = asyncio.get_running_loop().create_task(
                self._run(), name=f"stage {self.label}"
            )
        elif not look.held and self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def zoom(self, zoom: Zoom | None) -> None:
        if zoom is not None:
            zoom = zoom.clamped()
            if zoom.factor <= 1.0:
                zoom = None
        self._set(replace(self.look, zoom=zoom))

    def freeze(self, still: av.VideoFrame) -> None:
        self._set(replace(self.look, still=still, strokes=(), pointer=None))

    def unfreeze(self) -> None:
        self._set(replace(self.look, still=None, strokes=()))

    def draw(self, strokes: tuple[Stroke, ...]) -> None:
        self._set(replace(self.look, strokes=strokes))

    def point(self, at: tuple[float, float] | None) -> None:
        self._set(replace(self.look, pointer=at, pointer_at=self._clock()))

    def pause(self, slate: str) -> None:
        """Show `slate` instead of the camera; an empty slate resumes."""
        self._set(replace(self.look, slate=slate))

    async def _run(self) -> None:
        try:
            while True:
                look = self.look
                frame = look.still or self.latest
                if frame is not None or look.slate:
                    self.feed.push(frame or _blank(self.feed.size))
                await asyncio.sleep(self._period)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("stage %s: tick failed", self.label)

    # on the feed's worker thread

    def _compose(self, frame: av.VideoFrame) -> av.VideoFrame:
        look = self.look
        pointer = look.pointer
        if pointer is not None and self._clock() - look.pointer_at > POINTER_TIMEOUT_S:
            pointer = None
        if not (look.held or look.zoom or pointer):
            return frame
        size = self.feed.size or (frame.width, frame.height)
        if look.held:
            cached = self._cache
            if cached is not None and cached[0] is look and cached[1] == size:
                return cached[2]
            image = self._slate(look.slate, size) if look.slate else self._still(look)
            out = av.VideoFrame.from_ndarray(image, format="bgr24")
            self._cache = (look, size, out)
            return out

        image = bgr(frame)
        if look.zoom is not None:
            image = _zoomed(image, look.zoom)
        if pointer is not None:
            draw_pointer(image, *pointer)
        return av.VideoFrame.from_ndarray(image, format="bgr24")

    def _still(self, look: Look) -> Image:
        assert look.still is not None
        image = bgr(look.still)
        draw_strokes(image, look.strokes)
        return image

    def _slate(self, text: str, size: tuple[int, int]) -> Image:
        width, height = size
        image = np.full((height, width, 3), (40, 28, 20), np.uint8)
        draw_label(image, text, (width // 2, height // 2), height / 300)
        return image

    async def close(self) -> None:
        self.feed.prepare = None
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
            self._tick = None
        self.latest = None
        self.look = Look()


def _zoomed(image: Image, zoom: Zoom) -> Image:
    """Crop around the zoom's centre and scale back up to the picture's size."""
    h, w = image.shape[:2]
    crop_w, crop_h = max(2, int(w / zoom.factor)), max(2, int(h / zoom.factor))
    x = min(max(int(zoom.x * w - crop_w / 2), 0), w - crop_w)
    y = min(max(int(zoom.y * h - crop_h / 2), 0), h - crop_h)
    crop = image[y : y + crop_h, x : x + crop_w]
    return cast(Image, cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR))


def zoom_window(zoom: Zoom | None) -> tuple[float, float, float, float]:
    """The part of the camera picture a zoom shows: (x, y, width, height), fractions."""
    if zoom is None:
        return (0.0, 0.0, 1.0, 1.0)
    size = 1.0 / zoom.factor
    x = min(max(zoom.x - size / 2, 0.0), 1.0 - size)
    y = min(max(zoom.y - size / 2, 0.0), 1.0 - size)
    return (x, y, size, size)


def _blank(size: tuple[int, int] | None) -> av.VideoFrame:
    width, height = size or (640, 480)
    return av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), "bgr24")
