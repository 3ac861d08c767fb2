"""Technician tools: CPU per frame of the stage (zoom, pointer, annotated still) in
front of the one encoder, against the naive way of keeping the technician's view
clean and burning annotations into a second encode for the recording.

Frames are synthetic, encoded with the feed's own settings (libx264 veryfast,
zerolatency, constrained baseline) on this thread; CPU time is process time. Run
from the repository root:

    .venv/bin/python -m bench.tools --frames 150
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import av
import numpy as np

from server.media import Feed, Zoom
from server.media.annotation import Shape, Stroke
from server.media.stage import Stage

STROKES = (
    Stroke(1, Shape.ARROW, ((0.1, 0.5), (0.9, 0.5)), "yellow"),
    Stroke(2, Shape.CIRCLE, ((0.5, 0.5), (0.6, 0.6)), "red"),
    Stroke(
        3, Shape.FREEHAND, tuple((i / 60, 0.3 + 0.1 * np.sin(i / 5)) for i in range(60))
    ),
    Stroke(4, Shape.MARKER, ((0.3, 0.7),), number=1),
    Stroke(5, Shape.TEXT, ((0.2, 0.2),), "white", "loose screw"),
)


def frames(width: int, height: int, count: int) -> list[av.VideoFrame]:
    out = []
    for n in range(count):
        image = np.zeros((height, width, 3), np.uint8)
        image[:] = (60 + n % 120, 90, 140)
        image[:, (n * 7) % width : (n * 7) % width + 20] = 255
        out.append(
            av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        )
    return out


def cpu_ms(work: Callable[[av.VideoFrame], None], inputs: list[av.VideoFrame]) -> float:
    start = time.process_time()
    for frame in inputs:
        work(frame)
    return (time.process_time() - start) * 1000 / len(inputs)


async def run(width: int, height: int, count: int) -> list[tuple[str, float]]:
    inputs = frames(width, height, count)

    def new_feed() -> tuple[Feed, Stage]:
        feed = Feed("bench", size=(width, height))
        return feed, Stage("bench", feed)

    def encoder(feed: Feed) -> Callable[[av.VideoFrame], None]:
        pts = iter(range(10**9))

        def encode(frame: av.VideoFrame) -> None:
            feed._encode(frame, next(pts) * 3000, False)

        return encode

    rows = []
    feed, stage = new_feed()
    rows.append(("no tool (pass-through), one encode", cpu_ms(encoder(feed), inputs)))
    stage.zoom(Zoom(2.0, 0.4, 0.6))
    rows.append(("digital zoom 2x, one encode", cpu_ms(encoder(feed), inputs)))
    stage.zoom(None)
    stage.point((0.5, 0.5))
    rows.append(("live pointer, one encode", cpu_ms(encoder(feed), inputs)))
    stage.point(None)
    stage.freeze(inputs[0])
    stage.draw(STROKES)
    rows.append(("frozen still + 5 strokes, one encode", cpu_ms(encoder(feed), inputs)))
    await stage.close()
    await feed.close()

    # Naive: the technician's feed stays clean and the recording gets its own
    # encoder with the strokes drawn again on every frame.
    clean, _ = new_feed()
    burned, burned_stage = new_feed()
    burned_stage.freeze(inputs[0])
    burned_stage.draw(STROKES)
    encode_clean, encode_burned = encoder(clean), encoder(burned)

    def naive(frame: av.VideoFrame) -> None:
        encode_clean(frame)
        burned_stage._cache = None  # no reuse: composite every frame
        encode_burned(frame)

    rows.append(
        ("naive: clean feed + second encode with strokes", cpu_ms(naive, inputs))
    )
    await burned_stage.close()
    await clean.close()
    await burned.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    print("| picture | path | CPU ms per frame | vs pass-through |")
    print("| --- | --- | ---: | ---: |")
    for width, height in ((640, 480), (1280, 720)):
        rows = asyncio.run(run(width, height, args.frames))
        base = rows[0][1]
        for name, ms in rows:
            print(f"| {width}x{height} | {name} | {ms:.2f} | {ms / base:.2f}x |")


if __name__ == "__main__":
    main()
