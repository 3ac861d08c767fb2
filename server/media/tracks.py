"""Outbound tracks fed by the server: frames relayed from a source to one peer."""

from __future__ import annotations

import asyncio
import logging

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame

__all__ = ["FrameTrack"]

logger = logging.getLogger(__name__)

_QUEUE_FRAMES = 8
"""Frames a relay holds for a slow sender before dropping the oldest."""


class FrameTrack(MediaStreamTrack):
    """A track whose frames are pushed by the server (a relay to one receiver)."""

    def __init__(self, kind: str, label: str) -> None:
        super().__init__()
        self.kind = kind
        self.label = label
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(_QUEUE_FRAMES)
        self.dropped = 0

    def push(self, frame: Frame) -> None:
        if self.readyState != "live":
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(frame)

    async def recv(self) -> Frame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
        super().stop()
