"""The bounded hand-over from the event loop to a recording's writer thread.

The event loop offers media and never waits; the writer thread takes it in order.
When the writer falls behind, the backlog sheds load in a fixed order:

* audio is refused once the backlog is ``audio_share`` full, so the last room is
  kept for video;
* video is refused only when the backlog is full, and after a refused video
  packet every packet up to the next keyframe is refused too, since they could
  not be decoded without it.

Nothing is accepted before the first keyframe, so the file starts on one. The
first refusal is logged once as a warning; the counts are kept for the close line.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import av

__all__ = ["Backlog", "VideoItem"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ITEMS = 256  # about 3 s of 30 fps video with 20 ms audio frames
DEFAULT_AUDIO_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class VideoItem:
    """One encoded video frame, copied out of the caller's packet."""

    data: bytes
    pts: int  # in 1/90000 s on the session clock
    dts: int
    keyframe: bool


Item = VideoItem | av.AudioFrame


class Backlog:
    """A bounded FIFO with a drop policy; ``get`` returns None once closed."""

    def __init__(
        self,
        name: str,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        audio_share: float = DEFAULT_AUDIO_SHARE,
    ) -> None:
        if max_items < 2 or not 0 < audio_share <= 1:
            raise ValueError("need max_items >= 2 and 0 < audio_share <= 1")
        self.name = name
        self.max_items = max_items
        self.max_audio_items = max(1, int(max_items * audio_share))

        self.dropped_video = 0
        self.dropped_audio = 0
        self._items: deque[Item] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._started = False  # a keyframe has been accepted
        self._need_keyframe = True
        self._warned = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer_video(self, item: VideoItem) -> bool:
        """Queue ``item`` unless the policy refuses it; never blocks for long."""
        with self._ready:
            if self._closed:
                return False
            if self._need_keyframe and not item.keyframe:
                if self._started:
                    self.dropped_video += 1
                return False
            if len(self._items) >= self.max_items:
                self._need_keyframe = True
                self.dropped_video += 1
                self._warn_once()
                return False

            self._need_keyframe = False
            self._started = True
            self._items.append(item)
            self._ready.notify()
            return True

    def offer_audio(self, frame: av.AudioFrame) -> bool:
        with self._ready:
            if self._closed or not self._started:
                return False
            if len(self._items) >= self.max_audio_items:
                self.dropped_audio += 1
                self._warn_once()
                return False

            self._items.append(frame)
            self._ready.notify()
            return True

    def close(self) -> None:
        """Refuse further offers; ``get`` drains what is queued, then gives None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def discard(self) -> int:
        """Close, and let go of everything queued; returns how many items."""
        with self._ready:
            self._closed = True
            count = len(self._items)
            self._items.clear()
            self._ready.notify_all()
            return count

    def get(self) -> Item | None:
        """The oldest item, waiting for one; None when closed and drained."""
        with self._ready:
            while not self._items and not self._closed:
                self._ready.wait()
            if self._items:
                return self._items.popleft()
            return None

    def _warn_once(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "%s: writer falling behind (%d items queued), dropping media",
                self.name,
                len(self._items),
            )
