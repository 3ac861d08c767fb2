"""Program: switches take the next frame, layouts put cameras where they belong,
an away camera is held then slated, and the feed encodes each composed frame once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest

from server.media import Feed, Layout, Program, Shot, Zoom
from server.media.program import BACK_SOON
from tests.peers import wait_for
from tests.rooms.clients import Decoded
from tests.synthetic import MARKERS, marker_colour, region_colour


def _solid(colour: str, size: tuple[int, int] = (640, 480)) -> av.VideoFrame:
    image = np.empty((size[1], size[0], 3), np.uint8)
    image[:] = MARKERS[colour]
    return av.VideoFrame.from_ndarray(image, format="rgb24")


@pytest.fixture
async def program() -> AsyncIterator[Program]:
    feed = Feed("program-test", size=(640, 480), keyframe_min_gap_s=0.0)
    program = Program("program-test", feed, size=(640, 480), hold_s=0.3)
    yield program
    await program.close()
    await feed.close()


async def _feed_cameras(program: Program, *colours: str) -> asyncio.Task[None]:
    async def pump() -> None:
        while True:
            for colour in colours:
                program.put(colour, _solid(colour))
            await asyncio.sleep(1 / 30)

    return asyncio.get_running_loop().create_task(pump())


async def test_switch_shows_the_new_camera_in_the_next_frame(program: Program) -> None:
    decoded = Decoded(program.feed)
    pump = await _feed_cameras(program, "red", "green")
    try:
        program.set_shot(Shot(Layout.SINGLE, "red"))
        await wait_for(lambda: len(decoded.frames) >= 5, 5, "red frames")
        assert marker_colour(decoded.frames[-1]) == "red"
        switched_at = len(decoded.frames)
        program.set_shot(Shot(Layout.SINGLE, "green"))
        await wait_for(lambda: len(decoded.frames) >= switched_at + 3, 5, "frames")
        after = [marker_colour(f) for f in decoded.frames[switched_at:]]
        # At most the frame already being encoded at the switch shows red.
        assert after[1:3] == ["green", "green"], after
    finally:
        pump.cancel()


async def test_picture_in_picture_and_side_by_side_regions(program: Program) -> None:
    decoded = Decoded(program.feed)
    pump = await _feed_cameras(program, "red", "blue")
    try:
        program.set_shot(Shot(Layout.PIP, "red", "blue"))
        await wait_for(lambda: len(decoded.frames) >= 5, 5, "pip frames")
        pip = decoded.frames[-1]
        assert region_colour(pip, 0.05, 0.05, 0.5, 0.5) == "red"
        assert region_colour(pip, 0.72, 0.72, 0.95, 0.93) == "blue"

        count = len(decoded.frames)
        program.set_shot(Shot(Layout.SIDE, "red", "blue"))
        await wait_for(lambda: len(decoded.frames) >= count + 3, 5, "side frames")
        side = decoded.frames[-1]
        assert region_colour(side, 0.1, 0.4, 0.4, 0.6) == "red"
        assert region_colour(side, 0.6, 0.4, 0.9, 0.6) == "blue"
    finally:
        pump.cancel()


async def test_away_camera_is_held_then_slated_then_back(program: Program) -> None:
    Decoded(program.feed)  # a program nobody watches composes nothing
    ticks: list[tuple[str, ...]] = []
    program.on_tick = lambda shot, showing: ticks.append(showing)
    program.set_shot(Shot(Layout.SINGLE, "red"))
    program.put("red", _solid("red"))
    await wait_for(lambda: ("red",) in ticks, 5, "red on air")
    # No more frames: held for hold_s, then the slate says we are back soon.
    await wait_for(lambda: ticks[-1] == (), 5, "slate")
    snapshot = program._snapshot()
    assert snapshot.shot.layout == Layout.SLATE and snapshot.shot.slate == BACK_SOON
    program.put("red", _solid("red"))
    await wait_for(lambda: ticks[-1] == ("red",), 5, "back on air")


async def test_a_program_nobody_takes_composes_nothing_until_someone_comes(
    program: Program,
) -> None:
    program.put("red", _solid("red"))
    program.set_shot(Shot(Layout.SINGLE, "red"))
    await asyncio.sleep(0.3)  # ten frame periods
    assert program.frames_out == 0
    decoded = Decoded(program.feed)
    program.put("red", _solid("red"))
    await wait_for(lambda: len(decoded.frames) >= 1, 5, "the first frame")
    assert marker_colour(decoded.frames[0]) == "red"


async def test_zoom_crops_the_chosen_region(program: Program) -> None:
    image = np.empty((480, 640, 3), np.uint8)
    image[:, :320] = MARKERS["red"]
    image[:, 320:] = MARKERS["yellow"]
    program.put("cam", av.VideoFrame.from_ndarray(image, format="rgb24"))
    program.set_shot(Shot(Layout.SINGLE, "cam"))
    program.set_zoom("cam", Zoom(3.0, 0.9, 0.5))
    frame = program._compose(program._snapshot())
    assert (frame.width, frame.height) == (640, 480)
    assert marker_colour(frame) == "yellow"
    program.set_zoom("cam", Zoom(1.0))
    assert program._compose(program._snapshot()).width == 640
