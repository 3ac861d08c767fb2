"""Synthetic cameras drawn with OpenCV, for the built-in demo room and benchmarks.

Two looks of one imaginary product on a counter: `WIDE` (the whole machine, a cup
moving under the spout) and `CLOSE` (the pressure gauge, its needle sweeping).
Each frame carries the camera's name and a running clock, so a person watching
the program can tell which camera is on air and that the picture is live. The
static part of each look is drawn once; a frame costs a copy and a few shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Callable

import av
import cv2
import numpy as np

from server.media.program import Image, draw_label

__all__ = ["Look", "SyntheticCamera"]

logger = logging.getLogger(__name__)


class Look(enum.StrEnum):
    WIDE = "wide"
    CLOSE = "close"


class SyntheticCamera:
    """Draws frames at `fps` and hands each to `sink`, like a decoded camera."""

    def __init__(
        self,
        name: str,
        look: Look,
        sink: Callable[[av.VideoFrame], None],
        *,
        size: tuple[int, int] = (640, 480),
        fps: int = 30,
        wanted: Callable[[], bool] | None = None,
        idle_fps: float = 2.0,
    ) -> None:
        self.name = name
        self.look = look
        self.size = size
        self.fps = fps
        self.frames = 0
        self._sink = sink
        self._wanted = wanted
        """While this says no one looks, draw at `idle_fps` only (kept live)."""
        self.idle_fps = idle_fps
        self._t0 = time.monotonic()
        self._background = _background(look, size)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"synthetic camera {self.name}"
            )
            logger.info("synthetic camera %s: started (%s)", self.name, self.look)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        due = loop.time()
        drawn = -1e9
        while True:
            idle = self._wanted is not None and not self._wanted()
            # Idle, draw now and then only, enough to stay live for a viewer who
            # comes; the tick stays at `fps` so that viewer sees motion at once.
            if not idle or loop.time() - drawn >= 1.0 / self.idle_fps:
                drawn = loop.time()
                self._sink(self.draw(time.monotonic() - self._t0))
            # Keep the beat: a late tick is made up by the next one (no lasting
            # loss of rate on a busy machine); far behind, start again from now.
            due += period
            if due < loop.time() - period:
                due = loop.time()
            await asyncio.sleep(due - loop.time())

    def draw(self, t: float) -> av.VideoFrame:
        """One frame at `t` seconds since the camera started."""
        image = self._background.copy()
        width, height = self.size
        if self.look == Look.WIDE:
            x = int(width * (0.42 + 0.08 * math.sin(t * 1.3)))
            y = int(height * 0.70)
            cv2.rectangle(
                image, (x, y), (x + width // 12, y + height // 10), (235,) * 3, -1
            )
            cv2.line(
                image,
                (int(width * 0.45), int(height * 0.52)),
                (x + width // 24, y),
                (30, 60, 110),
                3,
            )
        else:
            centre = (width // 2, int(height * 0.52))
            radius = int(min(width, height) * 0.32)
            angle = math.radians(210 - 240 * (0.5 + 0.5 * math.sin(t * 0.9)))
            tip = (
                int(centre[0] + radius * 0.85 * math.cos(angle)),
                int(centre[1] - radius * 0.85 * math.sin(angle)),
            )
            cv2.line(
                image, centre, tip, (20, 20, 200), max(2, width // 160), cv2.LINE_AA
            )
            cv2.circle(image, centre, max(4, width // 64), (40, 40, 40), -1)

        draw_label(image, self.name, (width // 2, int(height * 0.08)), height / 320)
        clock = time.strftime("%H:%M:%S", time.localtime()) + f".{int(t * 10) % 10}"
        draw_label(image, clock, (width // 2, int(height * 0.93)), height / 400)
        self.frames += 1
        return av.VideoFrame.from_ndarray(image, format="bgr24")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            logger.info(
                "synthetic camera %s: stopped after %d frames", self.name, self.frames
            )


def _background(look: Look, size: tuple[int, int]) -> Image:
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    # A warm wall fading into a wooden counter.
    for row in range(height):
        shade = row / height
        if shade < 0.78:
            image[row] = (150 + 40 * shade, 170 + 30 * shade, 190 + 20 * shade)
        else:
            image[row] = (40, 80, 130)
    if look == Look.WIDE:
        # The machine: body, group head, drip tray, a gauge.
        cv2.rectangle(
            image,
            (int(width * 0.28), int(height * 0.22)),
            (int(width * 0.72), int(height * 0.80)),
            (70, 70, 75),
            -1,
        )
        cv2.rectangle(
            image,
            (int(width * 0.30), int(height * 0.24)),
            (int(width * 0.70), int(height * 0.40)),
            (170, 170, 175),
            -1,
        )
        cv2.rectangle(
            image,
            (int(width * 0.40), int(height * 0.44)),
            (int(width * 0.56), int(height * 0.52)),
            (35, 35, 35),
            -1,
        )
        cv2.rectangle(
            image,
            (int(width * 0.30), int(height * 0.80)),
            (int(width * 0.70), int(height * 0.84)),
            (120, 120, 125),
            -1,
        )
        cv2.circle(
            image,
            (int(width * 0.62), int(height * 0.32)),
            int(height * 0.05),
            (240, 240, 240),
            -1,
        )
    else:
        centre = (width // 2, int(height * 0.52))
        radius = int(min(width, height) * 0.32)
        cv2.circle(image, centre, radius + 10, (160, 160, 165), -1)
        cv2.circle(image, centre, radius, (245, 245, 240), -1)
        for step in range(9):
            angle = math.radians(210 - 30 * step)
            outer = (
                int(centre[0] + radius * 0.95 * math.cos(angle)),
                int(centre[1] - radius * 0.95 * math.sin(angle)),
            )
            inner = (
                int(centre[0] + radius * 0.80 * math.cos(angle)),
                int(centre[1] - radius * 0.80 * math.sin(angle)),
            )
            cv2.line(image, inner, outer, (30, 30, 30), 2, cv2.LINE_AA)
        draw_label(
            image,
            "bar",
            (centre[0], centre[1] + radius // 2),
            height / 480,
            (40, 40, 40),
        )
    return image
