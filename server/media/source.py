"""A source: one inbound track read by exactly one task, frames handed to sinks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame

__all__ = ["Source"]

logger = logging.getLogger(__name__)

Sink = Callable[[Frame], None]


class Source:
    """Reads `track` until it ends; every frame goes to `sink` on the loop thread."""

    def __init__(
        self,
        label: str,
        track: MediaStreamTrack,
        sink: Sink,
        on_end: Callable[[Source], None] | None = None,
    ) -> None:
        self.label = label
        self.kind: str = track.kind
        self.frames = 0
        self._track = track
        self._sink = sink
        self._on_end = on_end
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"source {label}"
        )

    async def _run(self) -> None:
        try:
            while True:
                frame = await self._track.recv()
                if not isinstance(frame, Frame):
                    continue  # inbound tracks yield decoded frames
                self.frames += 1
                self._sink(frame)
        except MediaStreamError:
            logger.debug(
                "source %s: track ended after %d frames", self.label, self.frames
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("source %s: failed", self.label)
        if self._on_end is not None:
            self._on_end(self)

    async def stop(self) -> None:
        self._on_end = None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
