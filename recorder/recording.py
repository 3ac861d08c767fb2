"""A recording: the session's video and mixed audio, written so a crash keeps it.

Threads::

    event loop ──put_video / put_audio──▶ Backlog ──▶ writer thread ──▶ video.mp4
                 (copy, never wait)       (bounded)   (mux, AAC encode)  (fragmented)

    close(reason) ── drain, close the file ──▶ remux to faststart ──▶ meta.json

``put_video`` takes encoded H.264 packets (Annex-B, SPS/PPS in band on keyframes,
pts in 1/90000 s on the session clock) and ``put_audio`` mixed s16 mono 48 kHz
frames (pts in 1/48000 s on the same clock). Neither blocks nor raises for media
trouble: when the writer fails (a full disk, a file-size limit), the failure is
logged once, kept in :attr:`Recording.error`, and later media is ignored. The
session being recorded goes on.

``close`` blocks while it drains and remuxes; from the event loop use ``aclose``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.stream import Stream

from .backlog import DEFAULT_MAX_ITEMS, Backlog, VideoItem
from .fragments import AUDIO_RATE, VIDEO_TIME_BASE, FragmentWriter
from .layout import (
    META_NAME,
    REMUX_TEMP_NAME,
    VIDEO_NAME,
    finalized_meta,
    write_meta,
)
from .remux import RemuxResult, remux_faststart

__all__ = ["Recording"]

logger = logging.getLogger(__name__)

DEFAULT_FRAGMENT_S = 1.0


class Recording:
    """Records into ``directory`` (created if needed), named by its last part."""

    def __init__(
        self,
        directory: Path,
        *,
        width: int,
        height: int,
        fragment_s: float = DEFAULT_FRAGMENT_S,
        audio: bool = True,
        max_queue_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"bad video size {width}x{height}")
        if not 0 < fragment_s <= 10:
            raise ValueError(f"fragment_s must be in (0, 10], not {fragment_s}")
        directory.mkdir(parents=True, exist_ok=True)
        for name in (VIDEO_NAME, META_NAME):
            if (directory / name).exists():
                raise FileExistsError(f"{directory / name}: already recorded")

        self.directory = directory
        self.id = directory.name
        self.width = width
        self.height = height
        self.has_audio = audio
        self.meta: dict[str, Any] | None = None
        self.started_at = time.time()
        """Wall-clock time of the first packet: recordings open on a keyframe."""

        self._error: str | None = None
        self._backlog = Backlog(self.id, max_items=max_queue_items)
        self._writer = FragmentWriter(
            directory / VIDEO_NAME,
            name=self.id,
            width=width,
            height=height,
            fragment_s=fragment_s,
            audio=audio,
        )
        self._close_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"recording-{self.id}", daemon=True
        )
        self._thread.start()
        logger.info(
            "%s: recording started (%dx%d, %s)",
            self.id,
            width,
            height,
            "with audio" if audio else "no audio",
        )

    @property
    def error(self) -> str | None:
        """Why the recording stopped writing, or None while all is well."""
        return self._error

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        """Items waiting for the writer thread."""
        return len(self._backlog)

    def put_video(self, packet: av.Packet[Stream]) -> None:
        """Queue an encoded video packet; ignored before the first keyframe."""
        if self._error is not None or self._backlog.closed:
            return
        if packet.pts is None:
            logger.debug("%s: video packet without pts ignored", self.id)
            return

        pts = _rescale(packet.pts, packet.time_base, VIDEO_TIME_BASE)
        dts = (
            pts
            if packet.dts is None
            else _rescale(packet.dts, packet.time_base, VIDEO_TIME_BASE)
        )
        item = VideoItem(bytes(packet), pts, dts, packet.is_keyframe)
        if not self._backlog.offer_video(item):
            logger.debug("%s: video pts %d not queued", self.id, pts)

    def put_audio(self, frame: av.AudioFrame) -> None:
        """Queue a mixed s16 mono 48 kHz frame; ignored before the first keyframe."""
        if self._error is not None or self._backlog.closed or not self.has_audio:
            return
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape != ("s16", "mono", AUDIO_RATE):
            raise ValueError(f"audio must be s16 mono {AUDIO_RATE} Hz, not {shape}")
        if frame.pts is None:
            logger.debug("%s: audio frame without pts ignored", self.id)
            return

        if not self._backlog.offer_audio(frame):
            logger.debug("%s: audio pts %d not queued", self.id, frame.pts)

    def close(self, reason: str) -> dict[str, Any] | None:
        """Drain, close and finalize; returns ``meta.json``'s content.

        Returns None when the file could not be finalized; it is then left for
        :func:`recorder.sweep.finalize_crashed`. Later calls return the same.
        """
        with self._close_lock:
            if self._closed:
                return self.meta
            self._closed = True
            self._backlog.close()
            self._thread.join()

            result = self._finalize(reason)
            self._log_closed(reason, result)
            return self.meta

    async def aclose(self, reason: str) -> dict[str, Any] | None:
        """:meth:`close` on a worker thread, for the event loop."""
        return await asyncio.to_thread(self.close, reason)

    def _run(self) -> None:
        """The writer thread: feed the file until the backlog is closed."""
        try:
            while (item := self._backlog.get()) is not None:
                if isinstance(item, VideoItem):
                    self._writer.write_video(item)
                else:
                    self._writer.write_audio(item)
            self._writer.close()
        except Exception as exc:
            self._fail(exc)
            self._writer.abandon()
            dropped = self._backlog.discard()
            logger.debug("%s: %d queued items let go", self.id, dropped)

    def _finalize(self, reason: str) -> RemuxResult | None:
        video = self.directory / VIDEO_NAME
        temp = self.directory / REMUX_TEMP_NAME
        try:
            exists = video.exists()
            result = remux_faststart(video, temp) if exists else RemuxResult.empty()
            if result.packets:
                os.replace(temp, video)

            meta = finalized_meta(
                result,
                reason=reason,
                recovered=False,
                width=self.width,
                height=self.height,
                error=self._error,
                started_at=self.started_at,
            )
            write_meta(self.directory, meta)
        except Exception as exc:
            self._fail(exc)
            temp.unlink(missing_ok=True)
            return None

        self.meta = meta
        return result

    def _fail(self, exc: Exception) -> None:
        if self._error is not None:
            logger.debug("%s: after failure: %r", self.id, exc)
            return
        self._error = f"{type(exc).__name__}: {exc}"
        logger.error("%s: recording failed: %s", self.id, self._error, exc_info=exc)

    def _log_closed(self, reason: str, result: RemuxResult | None) -> None:
        drops = self._backlog.dropped_video + self._backlog.dropped_audio
        details = []
        if drops:
            details.append(
                f"dropped {self._backlog.dropped_video} video,"
                f" {self._backlog.dropped_audio} audio"
            )
        if self._error is not None:
            details.append("cut short by a write failure")
        if result is None:
            details.append("not finalized, left for the sweep")
        duration = result.duration_s if result is not None else 0.0
        suffix = f"; {'; '.join(details)}" if details else ""
        logger.info(
            "%s: recording closed: %s (%.1f s%s)", self.id, reason, duration, suffix
        )


def _rescale(value: int, source: Fraction | None, target: Fraction) -> int:
    if source is None or source == target:
        return value
    return round(value * source / target)
