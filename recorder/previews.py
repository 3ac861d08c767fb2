"""Still pictures of a finalized recording: a thumbnail and a preview strip.

Each picture is the frame at its time: a seek to the keyframe before it, then a
decode forward (at most one keyframe interval of frames per picture):

    <id>/thumb.jpg     one frame early in the recording, ``THUMB_WIDTH`` wide
    <id>/strip.jpg     ``count`` frames side by side, ``STRIP_WIDTH`` wide each
    <id>/strip.json    the strip's frame times and tile size

Blocking: call from a worker thread, never from the event loop.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.container import InputContainer
from av.video.stream import VideoStream

from .layout import VIDEO_NAME

__all__ = [
    "STRIP_NAME",
    "STRIP_TIMES_NAME",
    "THUMB_NAME",
    "Previews",
    "make_previews",
    "read_previews",
]

logger = logging.getLogger(__name__)

THUMB_NAME = "thumb.jpg"
STRIP_NAME = "strip.jpg"
STRIP_TIMES_NAME = "strip.json"
THUMB_WIDTH = 320
STRIP_WIDTH = 160
DEFAULT_STRIP_COUNT = 12
THUMB_AT = 0.3
"""Where the thumbnail is taken, as a share of the duration (past opening slates)."""
JPEG_QUALITY = 80


@dataclass(frozen=True, slots=True)
class Previews:
    """What was drawn: the strip's frame times (seconds from the video's start)."""

    thumb: bool
    strip_times: list[float]
    tile_width: int
    tile_height: int


def make_previews(directory: Path, count: int = DEFAULT_STRIP_COUNT) -> Previews:
    """Write ``thumb.jpg`` and ``strip.jpg`` beside the directory's video."""
    video = directory / VIDEO_NAME
    with av.open(str(video)) as container:
        if not container.streams.video:
            return Previews(False, [], 0, 0)
        stream = container.streams.video[0]
        duration = _duration_s(container, stream)

        first = _frame_near(container, stream, duration * THUMB_AT)
        if first is None:
            return Previews(False, [], 0, 0)
        thumb = _scaled(first, THUMB_WIDTH)
        _write_jpeg(directory / THUMB_NAME, thumb)

        tiles: list[npt.NDArray[np.uint8]] = []
        times: list[float] = []
        for i in range(count):
            frame = _frame_near(container, stream, (i + 0.5) * duration / count)
            if frame is None:
                continue
            t = float(frame.time or 0.0)
            if times and t <= times[-1]:
                continue  # the same frame again: a tile shorter than a frame
            tiles.append(_scaled(frame, STRIP_WIDTH))
            times.append(round(t, 3))

    previews = Previews(True, times, STRIP_WIDTH, tiles[0].shape[0])
    _write_jpeg(directory / STRIP_NAME, np.hstack(tiles))
    description = {
        "times": times,
        "tile_width": previews.tile_width,
        "tile_height": previews.tile_height,
    }
    (directory / STRIP_TIMES_NAME).write_text(json.dumps(description))
    logger.debug("%s: previews made (%d tiles)", directory.name, len(tiles))
    return previews


def read_previews(directory: Path) -> Previews | None:
    """The previews made earlier for ``directory``, or None."""
    try:
        description = json.loads((directory / STRIP_TIMES_NAME).read_text())
        times = [float(t) for t in description["times"]]
        width, height = int(description["tile_width"]), int(description["tile_height"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Previews((directory / THUMB_NAME).exists(), times, width, height)


def _duration_s(container: InputContainer, stream: VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _frame_near(
    container: InputContainer, stream: VideoStream, at_s: float
) -> av.VideoFrame | None:
    """The frame showing at ``at_s`` (the last one if the video ends before)."""
    assert stream.time_base is not None
    container.seek(max(0, round(at_s / stream.time_base)), stream=stream)
    found = None
    for frame in container.decode(stream):
        if found is not None and (frame.time or 0.0) > at_s:
            break
        found = frame
    return found


def _scaled(frame: av.VideoFrame, width: int) -> npt.NDArray[np.uint8]:
    height = max(2, round(frame.height * width / frame.width) // 2 * 2)
    image = frame.to_ndarray(format="bgr24", width=width, height=height)
    return np.asarray(image, dtype=np.uint8)


def _write_jpeg(path: Path, image: npt.NDArray[np.uint8]) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"{path}: JPEG encoding failed")
    temp = path.with_suffix(".tmp")
    temp.write_bytes(data.tobytes())
    os.replace(temp, path)
