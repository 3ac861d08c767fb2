"""Annotation shapes drawn on a picture with OpenCV: arrows, circles, lines, text.

Points are fractions of the picture (0 to 1, origin top left), so one stroke lands
on the same spot of a full-resolution still, of the feed's smaller frames and of the
browser's overlay (`static/annotate.js` draws the same shapes with the same sizes
relative to the picture's width).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["PALETTE", "Shape", "Stroke", "draw_pointer", "draw_strokes"]

Image = npt.NDArray[np.uint8]

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (240, 30, 60),
    "yellow": (250, 210, 0),
    "green": (40, 210, 90),
    "blue": (30, 120, 250),
    "white": (255, 255, 255),
}
"""Stroke colours (RGB); the browser's overlay uses the same values."""

LINE_FRACTION = 1 / 160
"""Stroke width as a fraction of the picture's width."""


class Shape(enum.StrEnum):
    ARROW = "arrow"
    """From the first point to the second, head at the second."""
    CIRCLE = "circle"
    """Centre at the first point, through the second."""
    FREEHAND = "freehand"
    """A line through every point."""
    TEXT = "text"
    """`text` written from the first point."""
    MARKER = "marker"
    """A numbered disc at the first point."""


@dataclass(frozen=True)
class Stroke:
    id: int
    shape: Shape
    points: tuple[tuple[float, float], ...]
    colour: str = "red"
    text: str = ""
    number: int = 0

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shape": str(self.shape),
            "points": [round(v, 4) for point in self.points for v in point],
            "colour": self.colour,
            "text": self.text,
            "number": self.number,
        }


def _bgr(colour: str) -> tuple[int, int, int]:
    r, g, b = PALETTE.get(colour, PALETTE["red"])
    return (b, g, r)


def draw_strokes(image: Image, strokes: tuple[Stroke, ...]) -> None:
    """Draw `strokes` onto the BGR `image`, in order."""
    h, w = image.shape[:2]
    thick = max(2, round(w * LINE_FRACTION))
    for stroke in strokes:
        colour = _bgr(stroke.colour)
        pts = [(round(x * w), round(y * h)) for x, y in stroke.points]
        span = 1.0
        if len(pts) >= 2:
            span = float(np.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]))
        if stroke.shape == Shape.ARROW and len(pts) >= 2:
            tip = min(0.5, thick * 5 / max(1.0, span))
            cv2.arrowedLine(image, pts[0], pts[1], colour, thick, cv2.LINE_AA, 0, tip)
        elif stroke.shape == Shape.CIRCLE and len(pts) >= 2:
            cv2.circle(image, pts[0], max(1, round(span)), colour, thick, cv2.LINE_AA)
        elif stroke.shape == Shape.FREEHAND and len(pts) >= 2:
            line = np.array(pts, np.int32).reshape(-1, 1, 2)
            cv2.polylines(image, [line], False, colour, thick, cv2.LINE_AA)
        elif stroke.shape == Shape.TEXT and pts:
            scale = w / 900
            cv2.putText(
                image, stroke.text, pts[0], cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), thick + 2, cv2.LINE_AA,
            )  # fmt: skip
            cv2.putText(
                image, stroke.text, pts[0], cv2.FONT_HERSHEY_SIMPLEX, scale,
                colour, max(1, thick // 2), cv2.LINE_AA,
            )  # fmt: skip
        elif stroke.shape == Shape.MARKER and pts:
            _marker(image, pts[0], stroke.number, colour, w)


def _marker(
    image: Image, at: tuple[int, int], number: int, colour: tuple[int, int, int], w: int
) -> None:
    radius = max(6, round(w / 50))
    cv2.circle(image, at, radius, colour, -1, cv2.LINE_AA)
    cv2.circle(image, at, radius, (0, 0, 0), max(1, radius // 8), cv2.LINE_AA)
    text = str(number)
    scale = radius / 18
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    origin = (at[0] - tw // 2, at[1] + th // 2)
    cv2.putText(
        image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA
    )


def draw_pointer(image: Image, x: float, y: float) -> None:
    """The technician's live pointer: a ring with a dot, visible on any picture."""
    h, w = image.shape[:2]
    centre = (round(x * w), round(y * h))
    radius = max(6, round(w / 40))
    thick = max(2, round(w * LINE_FRACTION))
    cv2.circle(image, centre, radius, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.circle(image, centre, radius, _bgr("yellow"), thick, cv2.LINE_AA)
    cv2.circle(image, centre, max(2, thick), _bgr("yellow"), -1, cv2.LINE_AA)
