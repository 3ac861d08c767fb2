"""Switch latency: from a program command reaching the server to each viewer's
first decoded frame of the new camera.

A real node runs in this process and switches its room's program between two
colour cameras (tests/synthetic.py) at random moments; the server's handling time
is taken where the room handles the command. The cameras are published by an
aiortc presenter in a second process, and aiortc viewers in a third decode every
frame and note when each marker colour arrived (CLOCK_MONOTONIC is one clock for
every process of the machine, so the times compare).

The naive comparison, in the same run: a viewer that changes camera by opening a
new peer connection (as a client switching between per-camera streams would:
offer, answer, ICE, DTLS, then a keyframe), timed from the same kind of command.

Run from the repository root:

    unshare -n sh -c 'ip link set lo up && .venv/bin/python -m bench.switch'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from server.rooms import Room
from tests.conftest import node_config, start_node
from tests.peers import wait_for
from tests.rooms.clients import Decoded, Picture, Presenter, Viewer
from tests.synthetic import ColourCamera

FPS = 30


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _arrival(
    frames: list[tuple[float, str]], since: float, colour: str
) -> tuple[float, int]:
    """Seconds from `since` to the first frame of `colour`, and frames until it."""
    count = 0
    for at, seen in frames:
        if at < since:
            continue
        count += 1
        if seen == colour:
            return at - since, count
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


# helper processes


async def _stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


async def cameras(login: str, room: str) -> None:
    """A second presenter in the room's studio, publishing 'red' and 'green'."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        presenter = Presenter(login.split("/j/")[0], http)
        await presenter.sign_in(login)
        await presenter.studio(room=room)
        await presenter.publish(ColourCamera("red", 320, 240), "red")
        await presenter.publish(ColourCamera("green", 320, 240), "green")
        print("ready", flush=True)
        await (await _stdin()).readline()
        await presenter.close()


async def viewers(link: str, count: int) -> None:
    """Watchers that report every frame's arrival; 'naive C' opens a new one."""
    base = link.split("/j/")[0]
    async with aiohttp.ClientSession() as http:
        watching = [Viewer(base, http) for _ in range(count)]
        for viewer in watching:
            await viewer.enter(link)
            await viewer.watch()
        for viewer in watching:
            pic = viewer.pictures["watch"]
            await wait_for(lambda p=pic: p.frames > 10, 20, "frames")
        print("ready", flush=True)
        reader = await _stdin()
        while line := (await reader.readline()).decode().split():
            if line[0] != "naive":
                break
            naive = Viewer(base, http)
            await naive.enter(link)
            await naive.watch()
            pic = naive.pictures["watch"]
            await wait_for(lambda p=pic, c=line[1]: c in p.colours, 20, "naive")
            first = pic.times[pic.colours.index(line[1])]
            print(json.dumps({"naive": first}), flush=True)
            await naive.close()
        print(json.dumps({"frames": [_frames(v.pictures["watch"]) for v in watching]}))
        for viewer in watching:
            await viewer.close()


def _frames(picture: Picture) -> list[tuple[float, str]]:
    return list(zip(picture.times, picture.colours, strict=True))


def _spawn(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.switch", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise SystemExit(f"bench.switch {args[0]} failed to start")
    return process


def _say(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    if process.poll() is None:
        process.stdin.write(line + "\n")
        process.stdin.flush()


def _hear(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    heard: dict[str, Any] = json.loads(process.stdout.readline())
    return heard


# the driver


async def main(switches: int, viewer_count: int, naive_switches: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = node_config(Path(tmp) / "data", program_width=640, program_height=480)
        node = await start_node(config)
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        director = Presenter(node.base, http)
        helpers: list[subprocess.Popen[str]] = []
        try:
            await director.sign_in(node.login_link("director", "presenter"))
            await director.studio(title="Switch bench")
            room = node.node.rooms.get(director.room)
            login = node.login_link("cameras", "presenter")
            helpers.append(
                await asyncio.to_thread(_spawn, "--cameras", login, "--room", room.id)
            )
            cams = {"red": "s-red", "green": "s-green"}
            await wait_for(lambda: all(map(room.program.live, cams.values())), 20)
            await director.direct("single", cams["red"])
            watch = await asyncio.to_thread(
                _spawn, "--viewers", str(viewer_count), "--link", room.viewer_url
            )
            helpers.append(watch)
            handled = _handled_times(room)
            stream = Decoded(room.feed)

            # The product: the program switches, every viewer's stream continues.
            colour, commands = "red", []
            for _ in range(switches):
                await asyncio.sleep(random.uniform(0.5, 1.0))
                colour = "green" if colour == "red" else "red"
                await director.direct("single", cams[colour])
                commands.append((handled[-1], colour))

            # Naive: a new peer connection per switch.
            naive_ms: list[float] = []
            for _ in range(naive_switches):
                await asyncio.sleep(random.uniform(0.5, 1.0))
                colour = "green" if colour == "red" else "red"
                _say(watch, f"naive {colour}")
                await director.direct("single", cams[colour])
                first = (await asyncio.to_thread(_hear, watch))["naive"]
                naive_ms.append((first - handled[-1]) * 1000)
            _say(watch, "done")
            frames = (await asyncio.to_thread(_hear, watch))["frames"]
        finally:
            for helper in helpers:
                _say(helper, "done")
                await asyncio.to_thread(helper.wait, 30)
            await director.close()
            await http.close()
            await node.runner.cleanup()

    # At the server: the first encoded frame of the new camera leaving the feed.
    sent = list(zip(stream.times, stream.colours, strict=True))
    server_ms: list[float] = []
    server_frames: list[float] = []
    for at, switched_to in commands:
        seconds, count = _arrival(sent, at, switched_to)
        server_ms.append(seconds * 1000)
        server_frames.append(count)

    once_ms: list[float] = []
    once_frames: list[float] = []
    for seen in frames:
        for at, switched_to in commands:
            seconds, count = _arrival(seen, at, switched_to)
            once_ms.append(seconds * 1000)
            once_frames.append(count)
        latest = [f"{ms:.0f}" for ms in once_ms[-len(commands) :]]
        print("one viewer, ms per switch:", *latest, file=sys.stderr)

    print(
        f"\nSwitch latency, program 640x480@{FPS}, {switches} switches x "
        f"{viewer_count} viewers; naive: {naive_switches} switches\n"
    )
    print("| design | p50 ms | p95 ms | max ms | p50 frames | p95 frames |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| program switch, out of the server's encoder | {_pct(server_ms, 0.5):.0f} "
        f"| {_pct(server_ms, 0.95):.0f} | {max(server_ms):.0f} "
        f"| {_pct(server_frames, 0.5):.0f} | {_pct(server_frames, 0.95):.0f} |"
    )
    print(
        f"| program switch, decoded at the viewers | {_pct(once_ms, 0.5):.0f} "
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
        "\nFrames: frames a viewer decodes from the command to the new camera, that "
        "one included (naive: the time in frame periods)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--naive-switches", type=int, default=8)
    parser.add_argument("--cameras", help=argparse.SUPPRESS)
    parser.add_argument("--room", help=argparse.SUPPRESS)
    parser.add_argument("--link", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cameras:
        asyncio.run(cameras(args.cameras, args.room))
    elif args.link:
        asyncio.run(viewers(args.link, args.viewers))
    else:
        asyncio.run(main(args.switches, args.viewers, args.naive_switches))
