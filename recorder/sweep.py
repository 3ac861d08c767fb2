"""Finalizes the recordings a crash left behind, at server start.

A recording directory without ``meta.json`` was not closed: the server was killed
or the machine stopped. Its fragmented ``video.mp4`` is readable up to the last
whole fragment, so each such directory gets what :class:`recorder.Recording`
would have done on close: a faststart copy renamed over the video, an ``end``
event on its timeline, and ``meta.json`` with ``"recovered": true``.

One unreadable directory never stops the sweep: it is logged and skipped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .layout import (
    META_NAME,
    REMUX_TEMP_NAME,
    TIMELINE_NAME,
    VIDEO_NAME,
    finalized_meta,
    write_meta,
)
from .remux import RemuxResult, remux_faststart
from .timeline import Timeline, read_timeline

__all__ = ["CRASH_REASON", "finalize_crashed"]

logger = logging.getLogger(__name__)

CRASH_REASON = "server stopped unexpectedly"


def finalize_crashed(recordings_dir: Path) -> list[Path]:
    """Finalize every unfinished recording under ``recordings_dir``.

    Returns the directories that were finalized, in name order.
    """
    if not recordings_dir.is_dir():
        return []

    finalized = []
    for directory in sorted(recordings_dir.iterdir()):
        if not _unfinished(directory):
            continue
        try:
            _finalize(directory)
        except Exception:
            logger.exception("%s: could not finalize the recording", directory.name)
            continue
        finalized.append(directory)
    return finalized


def _unfinished(directory: Path) -> bool:
    if not directory.is_dir() or (directory / META_NAME).exists():
        return False
    return (directory / VIDEO_NAME).exists() or (directory / TIMELINE_NAME).exists()


def _finalize(directory: Path) -> None:
    video = directory / VIDEO_NAME
    temp = directory / REMUX_TEMP_NAME
    temp.unlink(missing_ok=True)  # a finalize the crash interrupted

    exists = video.exists()
    result = remux_faststart(video, temp) if exists else RemuxResult.empty()
    started_at = None
    if result.packets:
        # The fragmented file was last written about when the crash came.
        started_at = video.stat().st_mtime - result.duration_s
        os.replace(temp, video)

    end_s = result.end_s if result.packets else _last_event_s(directory)
    with Timeline(directory / TIMELINE_NAME, clock=lambda: end_s) as timeline:
        timeline.append("end", reason=CRASH_REASON, recovered=True)

    meta = finalized_meta(
        result,
        reason=CRASH_REASON,
        recovered=True,
        width=result.width,
        height=result.height,
        started_at=started_at,
    )
    write_meta(directory, meta)
    logger.info(
        "%s: recovered recording (%.1f s%s)",
        directory.name,
        result.duration_s,
        "" if result.packets else ", nothing readable",
    )


def _last_event_s(directory: Path) -> float:
    path = directory / TIMELINE_NAME
    if not path.exists():
        return 0.0
    times = [float(event["t"]) for event in read_timeline(path)]
    return max(times, default=0.0)
