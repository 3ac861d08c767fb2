"""The program: what the audience sees, composed from cameras and encoded once.

`Program` keeps the newest decoded frame of every camera (`put`) and, on its own
clock at `fps`, composes one picture from the camera(s) on air and pushes it into
its `Feed`, the single encoder every viewer and the recorder share::

    camera A ─put─┐
    camera B ─put─┼─> newest frame each ─tick (fps)─> compose ─> Feed ─> viewers
    camera C ─put─┘                        ▲                       └──> recorder
                                   shot (layout, cameras, slate), zooms

A switch (`set_shot`) only changes which frames the next tick composes, and wakes
the tick at once: the next encoded frame shows the new camera. Nothing is
renegotiated and no camera is asked for a keyframe, because no viewer decodes a
camera's own stream. An on-air camera that stops sending is held on its last frame
for `hold_s`, then the slate ("Back in a moment") replaces it until it sends again.

Composition uses OpenCV on BGR arrays on the program's worker thread; the common
case (one camera, no zoom, already the program's size) passes the decoded frame
through untouched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import av
import cv2
import numpy as np
import numpy.typing as npt

from server.media.feed import Feed

__all__ = [
    "BACK_SOON",
    "STARTING_SOON",
    "Image",
    "Layout",
    "Program",
    "Shot",
    "Zoom",
    "bgr",
    "draw_label",
    "fit_into",
]

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]

STARTING_SOON = "Starting soon"
BACK_SOON = "Back in a moment"

MAX_ZOOM = 4.0
"""Largest digital zoom factor; beyond it a camera's pixels show as blocks."""
_PIP_WIDTH = 0.32
"""Inset width as a fraction of the program's width."""
_PIP_MARGIN = 0.03
"""Inset margin from the program's edges, fraction of the program's width."""


class Layout(enum.StrEnum):
    SINGLE = "single"
    """One camera, full frame."""
    PIP = "pip"
    """`main` full frame with `second` inset at the bottom right."""
    SIDE = "side"
    """`main` on the left half, `second` on the right half."""
    SLATE = "slate"
    """No camera on air: the slate text."""


@dataclass(frozen=True)
class Zoom:
    """A digital zoom: `factor` ≥ 1 around the centre (`x`, `y`), fractions 0 to 1."""

    factor: float = 1.0
    x: float = 0.5
    y: float = 0.5

    def clamped(self) -> Zoom:
        return Zoom(
            min(max(self.factor, 1.0), MAX_ZOOM),
            min(max(self.x, 0.0), 1.0),
            min(max(self.y, 0.0), 1.0),
        )


@dataclass(frozen=True)
class Shot:
    """What is on air."""

    layout: Layout = Layout.SLATE
    main: str = ""
    second: str = ""
    slate: str = STARTING_SOON

    @property
    def cameras(self) -> tuple[str, ...]:
        if self.layout == Layout.SLATE:
            return ()
        if self.layout == Layout.SINGLE:
            return (self.main,)
        return (self.main, self.second)


@dataclass
class _Input:
    frame: av.VideoFrame | None = None
    at: float = 0.0


@dataclass
class _Snapshot:
    shot: Shot
    frames: dict[str, av.VideoFrame | None]
    zooms: dict[str, Zoom] = field(default_factory=dict)
    at: float = 0.0
    """When it was taken, on the program's clock."""


class Program:
    """Composes the on-air cameras into `feed` at `fps`."""

    def __init__(
        self,
        label: str,
        feed: Feed,
        *,
        size: tuple[int, int] = (640, 480),
        fps: int = 30,
        hold_s: float = 1.5,
        title: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.feed = feed
        self.size = (size[0] // 2 * 2, size[1] // 2 * 2)
        self.fps = fps
        self.hold_s = hold_s
        self.title = title
        self._clock = clock
        self.shot = Shot()
        self.zooms: dict[str, Zoom] = {}
        self._inputs: dict[str, _Input] = {}
        self._wake = asyncio.Event()
        self._switched = False
        self._slates: dict[str, Image] = {}
        self.frames_out = 0
        self.on_tick: Callable[[Shot, tuple[str, ...]], None] | None = None
        """Called on the loop after each composed frame with what it showed."""
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"program-{label}"
        )
        feed.on_wanted = self._wake.set
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"program {label}"
        )
        logger.info(
            "program %s: created at %dx%d@%d", label, self.size[0], self.size[1], fps
        )

    # cameras in

    def put(self, camera: str, frame: av.VideoFrame) -> None:
        """The newest decoded frame of `camera` (older ones are simply replaced)."""
        entry = self._inputs.get(camera)
        if entry is None:
            entry = self._inputs[camera] = _Input()
        entry.frame = frame
        entry.at = self._clock()

    def forget(self, camera: str) -> None:
        """The camera is gone for good (removed from the room)."""
        self._inputs.pop(camera, None)
        self.zooms.pop(camera, None)

    def live(self, camera: str) -> bool:
        """Whether `camera` sent a frame within the hold time."""
        entry = self._inputs.get(camera)
        return entry is not None and self._clock() - entry.at <= self.hold_s

    def latest(self, camera: str) -> av.VideoFrame | None:
        entry = self._inputs.get(camera)
        return entry.frame if entry is not None else None

    # what is on air

    def set_shot(self, shot: Shot) -> None:
        """Put `shot` on air from the next frame out (composed at once)."""
        if shot != self.shot:
            logger.info(
                "program %s: %s -> %s", self.label, _words(self.shot), _words(shot)
            )
        self.shot = shot
        self._switched = True
        self._wake.set()

    def set_zoom(self, camera: str, zoom: Zoom) -> None:
        zoom = zoom.clamped()
        if zoom.factor == 1.0:
            self.zooms.pop(camera, None)
        else:
            self.zooms[camera] = zoom
        self._switched = True
        self._wake.set()

    def showing(self) -> tuple[str, ...]:
        """The cameras the next frame will show (none: the slate)."""
        return tuple(c for c in self.shot.cameras if self.live(c))

    # the tick

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        due = loop.time()
        try:
            while True:
                if not self.feed.wanted:
                    # Nobody watches or records: compose nothing until someone
                    # comes (the feed wakes us) or the shot changes.
                    await self._wake.wait()
                    self._wake.clear()
                    due = loop.time()
                    continue
                snapshot = self._snapshot()
                frame = await loop.run_in_executor(
                    self._executor, self._compose, snapshot
                )
                # Stamped with the moment the shot was sampled, so a recording's
                # frames line up with the timeline even when encoding runs late.
                self.feed.push(frame, snapshot.at)
                self.frames_out += 1
                if self.on_tick is not None:
                    self.on_tick(snapshot.shot, tuple(snapshot.frames))
                # Keep the beat: a late tick is made up by the next one (no lasting
                # loss of rate on a busy machine); far behind, start again from now.
                due += period
                if due < loop.time() - period:
                    due = loop.time()
                if not self._switched:
                    tick = loop.call_at(due, self._wake.set)
                    await self._wake.wait()
                    tick.cancel()
                self._wake.clear()
                if self._switched:
                    # A switch: compose now and count the next period from here.
                    self._switched = False
                    due = loop.time()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("program %s: compositor failed", self.label)

    def _snapshot(self) -> _Snapshot:
        shot = self.shot
        frames: dict[str, av.VideoFrame | None] = {}
        for camera in shot.cameras:
            entry = self._inputs.get(camera)
            if entry is not None and self.live(camera):
                frames[camera] = entry.frame
        if shot.layout != Layout.SLATE and not frames:
            # Every on-air camera is away: the slate stands in until one returns.
            shot = Shot(Layout.SLATE, shot.main, shot.second, BACK_SOON)
        return _Snapshot(shot, frames, dict(self.zooms), self._clock())

    def _compose(self, snapshot: _Snapshot) -> av.VideoFrame:
        """Runs on the program's worker thread."""
        shot, frames = snapshot.shot, snapshot.frames
        width, height = self.size
        if shot.layout == Layout.SLATE:
            return av.VideoFrame.from_ndarray(self._slate(shot.slate), format="bgr24")

        names = [c for c in shot.cameras if frames.get(c) is not None]
        if shot.layout == Layout.SINGLE or len(names) == 1:
            # One camera (or the other of a pair is away): full frame.
            main = frames[names[0]]
            assert main is not None
            zoom = snapshot.zooms.get(names[0])
            if zoom is None and (main.width, main.height) == (width, height):
                return main  # pass-through: no pixel touched
            canvas = np.zeros((height, width, 3), np.uint8)
            fit_into(canvas, _bgr(main, zoom), 0, 0, width, height)
            return av.VideoFrame.from_ndarray(canvas, format="bgr24")

        main, second = frames[shot.main], frames[shot.second]
        assert main is not None and second is not None
        main_zoom = snapshot.zooms.get(shot.main)
        second_zoom = snapshot.zooms.get(shot.second)
        canvas = np.zeros((height, width, 3), np.uint8)
        if shot.layout == Layout.PIP:
            fit_into(canvas, _bgr(main, main_zoom), 0, 0, width, height)
            inset_w = int(width * _PIP_WIDTH) // 2 * 2
            inset_h = inset_w * height // width // 2 * 2
            margin = int(width * _PIP_MARGIN)
            x, y = width - inset_w - margin, height - inset_h - margin
            cv2.rectangle(
                canvas,
                (x - 2, y - 2),
                (x + inset_w + 1, y + inset_h + 1),
                (255,) * 3,
                2,
            )
            fit_into(canvas, _bgr(second, second_zoom), x, y, inset_w, inset_h)
        else:
            half = width // 2
            fit_into(canvas, _bgr(main, main_zoom), 0, 0, half, height)
            fit_into(canvas, _bgr(second, second_zoom), half, 0, width - half, height)
        return av.VideoFrame.from_ndarray(canvas, format="bgr24")

    def _slate(self, text: str) -> Image:
        cached = self._slates.get(text)
        if cached is not None:
            return cached
        width, height = self.size
        image = np.full((height, width, 3), (48, 32, 24), np.uint8)
        draw_label(image, text or BACK_SOON, (width // 2, height // 2), height / 240)
        if self.title:
            draw_label(
                image,
                self.title,
                (width // 2, height // 2 + int(height * 0.14)),
                height / 480,
                colour=(200, 200, 200),
            )
        if len(self._slates) > 16:
            self._slates.clear()
        self._slates[text] = image
        return image

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._executor.shutdown(wait=True)
        self._inputs.clear()
        logger.info("program %s: closed after %d frames", self.label, self.frames_out)


def _words(shot: Shot) -> str:
    if shot.layout == Layout.SLATE:
        return f"slate '{shot.slate}'"
    if shot.layout == Layout.SINGLE:
        return f"{shot.main}"
    return f"{shot.layout} {shot.main}+{shot.second}"


def bgr(frame: av.VideoFrame) -> Image:
    """A decoded frame as an OpenCV BGR picture."""
    return cast(Image, frame.to_ndarray(format="bgr24"))


def _bgr(frame: av.VideoFrame, zoom: Zoom | None) -> Image:
    image = bgr(frame)
    if zoom is None or zoom.factor <= 1.0:
        return image
    h, w = image.shape[:2]
    crop_w, crop_h = max(2, int(w / zoom.factor)), max(2, int(h / zoom.factor))
    x = min(max(int(zoom.x * w - crop_w / 2), 0), w - crop_w)
    y = min(max(int(zoom.y * h - crop_h / 2), 0), h - crop_h)
    return image[y : y + crop_h, x : x + crop_w]


def fit_into(canvas: Image, image: Image, x: int, y: int, w: int, h: int) -> None:
    """Scale `image` to fit the box (x, y, w, h) of `canvas`, keeping its shape."""
    ih, iw = image.shape[:2]
    scale = min(w / iw, h / ih)
    sw, sh = max(1, round(iw * scale)), max(1, round(ih * scale))
    if (sw, sh) != (iw, ih):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cast(Image, cv2.resize(image, (sw, sh), interpolation=interpolation))
    ox, oy = x + (w - sw) // 2, y + (h - sh) // 2
    canvas[oy : oy + sh, ox : ox + sw] = image


def draw_label(
    image: Image,
    text: str,
    centre: tuple[int, int],
    scale: float,
    colour: tuple[int, int, int] = (255, 255, 255),
) -> None:
    """Centred text with a dark outline, readable on any picture."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, round(scale * 2))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    origin = (centre[0] - tw // 2, centre[1] + th // 2)
    cv2.putText(image, text, origin, font, scale, (0, 0, 0), thickness + 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, font, scale, colour, thickness, cv2.LINE_AA)
