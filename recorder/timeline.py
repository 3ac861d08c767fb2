"""The session timeline: an append-only ``timeline.jsonl`` beside the video.

Each event is one JSON object on its own line, ``{"t": 12.345, "kind": "...", ...}``,
where ``t`` is seconds on the session clock, the clock the recording's media
timestamps use. Every line is handed to the operating system as soon as it is
written, so a ``kill -9`` of the server keeps it (a power cut may not: there is no
fsync on this path).

A crash in the middle of a write leaves a torn last line. :func:`read_timeline`
skips it, and a :class:`Timeline` reopened on such a file starts on a fresh line
so that its own events stay readable.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["Timeline", "read_timeline"]

logger = logging.getLogger(__name__)

_RESERVED_FIELDS = frozenset({"t", "kind"})


class Timeline:
    """Appends events to ``path``, stamping each with ``clock()``."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        self._file: TextIO | None = path.open("a", encoding="utf-8")
        if not _ends_with_newline(path):
            # A torn line from a crash: keep it apart from what we write.
            self._file.write("\n")
            self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file is None

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Write one event and flush it to the OS; returns the event written."""
        if self._file is None:
            raise ValueError(f"{self.path}: timeline is closed")
        if not kind:
            raise ValueError("an event needs a kind")
        reserved = _RESERVED_FIELDS.intersection(fields)
        if reserved:
            raise ValueError(f"reserved event fields: {sorted(reserved)}")

        t = self._clock()
        if not math.isfinite(t):
            raise ValueError(f"clock returned {t!r}")

        event: dict[str, Any] = {"t": round(t, 3), "kind": kind, **fields}
        # Serialize first: a field json cannot encode must not leave half a line.
        line = json.dumps(event, ensure_ascii=False, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        return event

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Timeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """Every readable event of ``path``, in file order.

    A torn last line is expected after a crash and skipped quietly; an unreadable
    line anywhere else is skipped with a warning.
    """
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    events: list[dict[str, Any]] = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)

    for number, line in enumerate(lines):
        if not line.strip():
            continue
        event = _parse_event(line)
        if event is not None:
            events.append(event)
        elif number == last:
            logger.debug("%s: skipping torn last line", path)
        else:
            logger.warning("%s:%d: skipping unreadable line", path, number + 1)
    return events


def _parse_event(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or "t" not in event or "kind" not in event:
        return None
    return event


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        if file.seek(0, 2) == 0:
            return True
        file.seek(-1, 2)
        return file.read(1) == b"\n"
