"""What a recording directory holds, and its ``meta.json``.

One directory per recording, named by the recording's id::

    <id>/video.mp4          fragmented while recording; faststart once finalized
    <id>/timeline.jsonl     session events, one JSON object per line
    <id>/meta.json          written last: its presence means "finalized"
    <id>/video.remux.tmp    the faststart copy being written; renamed over video.mp4

A directory with ``video.mp4`` or ``timeline.jsonl`` but no ``meta.json`` was left
by a crash; :mod:`recorder.sweep` finalizes it at the next start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .remux import RemuxResult

__all__ = [
    "META_NAME",
    "REMUX_TEMP_NAME",
    "TIMELINE_NAME",
    "VIDEO_NAME",
    "finalized_meta",
    "read_meta",
    "write_meta",
]

VIDEO_NAME = "video.mp4"
TIMELINE_NAME = "timeline.jsonl"
META_NAME = "meta.json"
REMUX_TEMP_NAME = "video.remux.tmp"

_META_TEMP_NAME = "meta.json.tmp"


def write_meta(directory: Path, meta: dict[str, Any]) -> Path:
    """Write ``meta.json`` atomically: readers see the old file or the new one."""
    temp = directory / _META_TEMP_NAME
    with temp.open("w", encoding="utf-8") as file:
        json.dump(meta, file, indent=2, sort_keys=True)
        file.write("\n")

    target = directory / META_NAME
    os.replace(temp, target)
    return target


def read_meta(directory: Path) -> dict[str, Any] | None:
    """The directory's ``meta.json``, or None while it is not finalized."""
    try:
        text = (directory / META_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None

    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError(f"{directory / META_NAME}: not a JSON object")
    return meta


def finalized_meta(
    result: RemuxResult,
    *,
    reason: str,
    recovered: bool,
    width: int,
    height: int,
    error: str | None = None,
    started_at: float | None = None,
) -> dict[str, Any]:
    """The ``meta.json`` of a finalized recording, from its remux.

    ``started_at`` is the wall-clock time (Unix seconds) of the video's first
    frame, when known: the library dates recordings by it.
    """
    return {
        "finalized": True,
        "empty": result.packets == 0,
        "duration_s": round(result.duration_s, 3),
        "start_s": round(result.start_s, 3),
        "width": width,
        "height": height,
        "has_audio": result.has_audio,
        "reason": reason,
        "recovered": recovered,
        "error": error,
        "started_at": None if started_at is None else round(started_at, 3),
    }
