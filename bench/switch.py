"""Switch latency: from a program command reaching the server to each viewer's
first decoded frame of the new camera.

A real node runs in this process with an aiortc presenter publishing two colour
cameras (tests/synthetic.py) and aiortc viewers that decode every frame and read
its marker colour. The presenter switches between the cameras at random moments;
the server's handling time is taken where the room handles the command.

The naive comparison, in the same run: a viewer that changes camera by opening a
new peer connection (as a client switching between per-camera streams would:
offer, answer, ICE, DTLS, then a keyframe), timed from the same command.

Run from the repository root:

    unshare -n sh -c 'ip link set lo up && .venv/bin/python -m bench.switch'
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from server.rooms import Room
from tests.conftest import node_config, start_node
from tests.peers import wait_for
from tests.rooms.clients import Picture, Presenter, Viewer
from tests.synthetic import ColourCamera

FPS = 30


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _arrival(picture: Picture, since: float, colour: str) -> tuple[float, int]:
    """Seconds from `since` to the first frame of `colour`, and frames until it."""
    frames = 0
    for at, seen in zip(picture.times, picture.colours, strict=True):
        if at < since:
            continue
        frames += 1
        if seen == colour:
            return at - since, frames
    raise AssertionError(f"no {colour} frame after the switch")


def _handled_times(room: Room) -> list[float]:
    """When the room handled each program command (wraps `Room.direct`)."""
    handled: list[float] = []
    direct = room.direct

    def timed(member: Any, message: Any) -> None:
        handled.append(time.monotonic())
        direct(member, message)

    room.direct = timed  # type: ignore[method-assign]
    return handled


async def main(switches: int, viewer_count: int, naive_switches: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = node_config(Path(tmp) / "data", program_width=640, program_height=480)
        node = await start_node(config)
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        viewer_http = aiohttp.ClientSession()
        presenter = Presenter(node.base, http)
        viewers = [Viewer(node.base, viewer_http) for _ in range(viewer_count)]
        try:
            await presenter.sign_in(node.login_link("bench", "presenter"))
            await presenter.studio(title="Switch bench")
            cams = {
                "red": await presenter.publish(ColourCamera("red"), "red"),
                "green": await presenter.publish(ColourCamera("green"), "green"),
            }
            room = node.node.rooms.get(presenter.room)
            await presenter.direct("single", cams["red"])
            for viewer in viewers:
                await viewer.enter(room.viewer_url)
                await viewer.watch()
            for viewer in viewers:
                pic = viewer.pictures["watch"]
                await wait_for(lambda p=pic: p.colours[-3:] == ["red"] * 3, 20)
            handled = _handled_times(room)

            # The product: the program switches, every viewer's stream continues.
            once_ms: list[float] = []
            once_frames: list[float] = []
            colour = "red"
            for index in range(switches):
                await asyncio.sleep(random.uniform(0.4, 0.9))
                colour = "green" if colour == "red" else "red"
                await presenter.direct("single", cams[colour])
                for viewer in viewers:
                    pic = viewer.pictures["watch"]
                    await wait_for(lambda p=pic, c=colour: p.colours[-1:] == [c], 10)
                    seconds, frames = _arrival(pic, handled[-1], colour)
                    once_ms.append(seconds * 1000)
                    once_frames.append(frames)
                print(f"switch {index + 1}/{switches}", file=sys.stderr)

            # Naive: a new peer connection per switch.
            naive_ms: list[float] = []
            for index in range(naive_switches):
                await asyncio.sleep(random.uniform(0.4, 0.9))
                colour = "green" if colour == "red" else "red"
                naive = Viewer(node.base, viewer_http)
                await naive.enter(room.viewer_url)
                await presenter.direct("single", cams[colour])
                await naive.watch()
                pic = naive.pictures["watch"]
                await wait_for(lambda p=pic, c=colour: p.colours[-1:] == [c], 10)
                naive_ms.append(_arrival(pic, handled[-1], colour)[0] * 1000)
                await naive.close()
                print(f"naive switch {index + 1}/{naive_switches}", file=sys.stderr)
        finally:
            for viewer in viewers:
                await viewer.close()
            await presenter.close()
            await http.close()
            await viewer_http.close()
            await node.runner.cleanup()

    print(
        f"\nSwitch latency, program 640x480@{FPS}, {switches} switches x "
        f"{viewer_count} viewers; naive: {naive_switches} switches\n"
    )
    print("| design | p50 ms | p95 ms | max ms | p50 frames | p95 frames |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| program switch (encode once) | {_pct(once_ms, 0.5):.0f} "
        f"| {_pct(once_ms, 0.95):.0f} | {max(once_ms):.0f} "
        f"| {_pct(once_frames, 0.5):.0f} | {_pct(once_frames, 0.95):.0f} |"
    )
    print(
        f"| naive: new peer connection | {_pct(naive_ms, 0.5):.0f} "
        f"| {_pct(naive_ms, 0.95):.0f} | {max(naive_ms):.0f} "
        f"| {_pct(naive_ms, 0.5) * FPS / 1000:.0f} "
        f"| {_pct(naive_ms, 0.95) * FPS / 1000:.0f} |"
    )
    print(
        "\nFrames: decoded frames a viewer shows from the command to the new "
        "camera, that one included (naive: the time in frame periods)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--naive-switches", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.switches, args.viewers, args.naive_switches))
