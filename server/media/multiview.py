"""The multiview: every camera of a studio in one grid, for the presenter's previews.

Vision mixers show their operator all inputs on one screen; so does the studio.
`Multiview` draws the newest frame of each camera into a tile with its number and
name, a red frame around what is on air, and "No signal" for a camera that is
away, then pushes the grid into its own small `Feed`. It only composes while
someone watches (`feed.receivers`), so a room nobody directs costs nothing here,
and one encode serves every staff member watching, however many cameras there are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import av
import cv2
import numpy as np

from server.media.feed import Feed
from server.media.program import Image, bgr, draw_label, fit_into

__all__ = ["Multiview", "Tile"]

logger = logging.getLogger(__name__)

_ON_AIR = (40, 40, 220)
_AWAY = (90, 90, 90)


@dataclass(frozen=True)
class Tile:
    """One camera as the multiview shows it."""

    number: int
    name: str
    frame: av.VideoFrame | None
    on_air: bool


class Multiview:
    """Composes `tiles()` into `feed` at `fps` while the feed has receivers."""

    def __init__(
        self,
        label: str,
        feed: Feed,
        tiles: Callable[[], Sequence[Tile]],
        *,
        size: tuple[int, int] = (640, 360),
        fps: int = 10,
    ) -> None:
        self.label = label
        self.feed = feed
        self.size = size
        self.fps = fps
        self._tiles = tiles
        self.frames_out = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"multiview-{label}"
        )
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"multiview {label}"
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(1.0 / self.fps)
                if self.feed.receivers == 0:
                    continue
                tiles = list(self._tiles())
                frame = await loop.run_in_executor(self._executor, self._compose, tiles)
                self.feed.push(frame)
                self.frames_out += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("multiview %s: failed", self.label)

    def _compose(self, tiles: list[Tile]) -> av.VideoFrame:
        """Runs on the multiview's worker thread."""
        width, height = self.size
        canvas = np.full((height, width, 3), 24, np.uint8)
        if not tiles:
            draw_label(
                canvas, "No cameras yet", (width // 2, height // 2), height / 360
            )
            return av.VideoFrame.from_ndarray(canvas, format="bgr24")

        columns = math.ceil(math.sqrt(len(tiles)))
        rows = math.ceil(len(tiles) / columns)
        tile_w, tile_h = width // columns, height // rows
        for index, tile in enumerate(tiles):
            x, y = (index % columns) * tile_w, (index // columns) * tile_h
            _draw_tile(canvas, tile, x, y, tile_w, tile_h)
        return av.VideoFrame.from_ndarray(canvas, format="bgr24")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._executor.shutdown(wait=True)


def _draw_tile(canvas: Image, tile: Tile, x: int, y: int, w: int, h: int) -> None:
    pad = 3
    if tile.frame is not None:
        fit_into(canvas, bgr(tile.frame), x + pad, y + pad, w - 2 * pad, h - 2 * pad)
    else:
        draw_label(canvas, "No signal", (x + w // 2, y + h // 2), h / 300, _AWAY)
    colour = _ON_AIR if tile.on_air else _AWAY
    cv2.rectangle(canvas, (x + 1, y + 1), (x + w - 2, y + h - 2), colour, pad)
    label = f"{tile.number} {tile.name}" + ("  ON AIR" if tile.on_air else "")
    draw_label(canvas, label, (x + w // 2, y + h - max(12, h // 10)), h / 400)
