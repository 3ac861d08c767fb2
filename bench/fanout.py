"""Fan-out: one room's program to N viewers, encoded once versus once per viewer.

The server is a real node in its own process: the built-in demo room (two
synthetic cameras, program 640x480 at 30 fps) with nothing but viewers. Viewers
are aiortc clients in other processes (up to 16 each) that enter with the demo
link and watch; they count the video frames their receiver assembles and skip
decoding (a bench-only patch of the client's decoder thread), so the clients'
CPU does not crowd the server's on a small machine.

Modes, in the same run:
  once   the product: the program is encoded once; every viewer's sender gets
         the same H.264 packets.
  naive  aiortc's usual way: one `MediaRelay` subscription per viewer, each
         viewer's sender running its own x264 encoder (aiortc's defaults).

For each N it measures the server process's CPU (user + system time from /proc
over the window; 100% = one core) and the frames per second each viewer got.
Run from the repository root (the numbers go in docs/performance.md):

    unshare -n sh -c 'ip link set lo up && .venv/bin/python -m bench.fanout'
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ONCE_COUNTS = (1, 2, 4, 8, 16, 32, 64)
NAIVE_COUNTS = (1, 2, 4, 8)
_PER_PROCESS = 16
"""Viewers one client process holds."""
VIDEO_TB = fractions.Fraction(1, 90_000)


# the server process


def _yes(_: object) -> bool:
    return True


async def serve(mode: str, port: int, data_dir: Path) -> None:
    from aiortc.contrib.media import MediaRelay

    from server.media import Feed, FrameTrack
    from tests.conftest import node_config, start_node

    config = node_config(
        data_dir,
        port=port,
        demo=True,
        program_width=640,
        program_height=480,
        max_room_viewers=1000,
    )
    node = await start_node(config)
    room = node.node.rooms.get("demo")
    if mode == "naive":
        relay = MediaRelay()
        program = FrameTrack("video", "naive program")
        sent = 0

        def push(frame: Any, at: float | None = None) -> None:
            # The composed frame goes to the per-viewer encoders, not the feed;
            # timestamps count frames, as aiortc's own video tracks do.
            nonlocal sent
            frame.pts = sent * (VIDEO_TB.denominator // 30)
            frame.time_base = VIDEO_TB
            sent += 1
            program.push(frame)

        def subscribe(label: str) -> Any:
            if room.feed.on_wanted is not None:
                room.feed.on_wanted()  # wake the idle room, as the feed would
            return relay.subscribe(program, buffered=False)

        room.feed.push = push  # type: ignore[method-assign]
        room.feed.subscribe = subscribe  # type: ignore[method-assign]
        # The room idles while its feed has no receivers; the naive viewers take
        # the relay instead, so the feed must say it is wanted.
        room.feed.__class__ = type("NaiveFeed", (Feed,), {"wanted": property(_yes)})
    print(json.dumps({"link": node.node.rooms.viewer_url("demo")}), flush=True)
    reader = await _stdin()
    try:
        # One line of figures per line the driver sends; its end ends the server.
        while await reader.readline():
            figures = {"composed": room.program.frames_out, "t": time.monotonic()}
            print(json.dumps(figures), flush=True)
    finally:
        await node.runner.cleanup()


async def _stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


# the viewer processes


def _count_instead_of_decoding() -> dict[int, int]:
    """Bench clients only: count assembled video frames, decode nothing."""
    import aiortc.rtcrtpreceiver as receiver

    counts: dict[int, int] = {}

    def worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
        key = id(output_q)
        while True:
            task = input_q.get()
            if task is None:
                return
            codec, _ = task
            if codec.mimeType.startswith("video/"):
                counts[key] = counts.get(key, 0) + 1

    receiver.decoder_worker = worker
    return counts


async def viewers(link: str, count: int) -> None:
    import aiohttp
    from aiortc import (
        RTCPeerConnection,
        RTCRtpReceiver,
        RTCSessionDescription,
    )

    from server.media import announce_host_addresses, rtc_configuration

    announce_host_addresses(["127.0.0.1"])
    counts = _count_instead_of_decoding()
    h264 = [
        c
        for c in RTCRtpReceiver.getCapabilities("video").codecs
        if c.mimeType in ("video/H264", "video/rtx")
    ]
    base = link.split("/j/")[0]
    pcs: list[RTCPeerConnection] = []
    sockets: list[Any] = []
    drains: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with http.get(link, headers={"Accept": "application/json"}) as r:
                boot = await r.json()
            ws = await http.ws_connect(f"{base}/ws")
            sockets.append(ws)
            await ws.send_json({"v": 1, "type": "enter", "token": boot["token"]})
            room = await _reply(ws, "welcome")
            pc = RTCPeerConnection(rtc_configuration([]))
            pcs.append(pc)
            pc.addTransceiver("video", "recvonly").setCodecPreferences(h264)
            pc.addTransceiver("audio", "recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            await ws.send_json(
                {
                    "v": 1,
                    "type": "room_offer",
                    "room": room["room"],
                    "purpose": "watch",
                    "sdp": pc.localDescription.sdp,
                }
            )
            answer = await _reply(ws, "answer")
            # Keep reading: room summaries arrive, and pongs need a reader.
            drains.append(asyncio.get_running_loop().create_task(_drain(ws)))
            await pc.setRemoteDescription(
                RTCSessionDescription(answer["sdp"], "answer")
            )

        await asyncio.gather(*(one() for _ in range(count)))
        deadline = time.monotonic() + 30
        while len([n for n in counts.values() if n > 10]) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(counts)} of {count} viewers receive")
            await asyncio.sleep(0.1)
        print("ready", flush=True)

        # The driver says when the window opens and when it closes.
        reader = await _stdin()
        await reader.readline()
        start, t0 = dict(counts), time.monotonic()
        await reader.readline()
        seconds = time.monotonic() - t0
        fps = [(counts[k] - start.get(k, 0)) / seconds for k in counts]
        print(json.dumps({"fps": fps}), flush=True)
        for pc in pcs:
            await pc.close()
        for ws in sockets:
            await ws.close()


async def _drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def _reply(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads((await ws.receive()).data)
        if message["type"] == kind:
            return message
        if message["type"] == "error":
            raise SystemExit(f"server refused: {message}")


# the driver


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def measure(mode: str, count: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        from tests.conftest import free_port

        server = _spawn("--serve", mode, "--port", str(free_port()), "--data", tmp)
        clients: list[subprocess.Popen[str]] = []
        try:
            assert server.stdout is not None
            link = json.loads(server.stdout.readline())["link"]
            left = count
            while left > 0:
                take = min(_PER_PROCESS, left)
                clients.append(_spawn("--viewers", str(take), "--link", link))
                left -= take
            for client in clients:
                assert client.stdout is not None
                if client.stdout.readline().strip() != "ready":
                    raise SystemExit(f"{mode} x{count}: a viewer process failed")
            time.sleep(1.0)  # settle after the joins' keyframes
            for client in clients:
                assert client.stdin is not None
                client.stdin.write("go\n")
                client.stdin.flush()
            pid = server.pid
            program0, cpu0, t0 = _ask(server), _cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            program1, cpu1, t1 = _ask(server), _cpu_seconds(pid), time.monotonic()
            fps: list[float] = []
            for client in clients:
                assert client.stdin is not None and client.stdout is not None
                client.stdin.write("stop\n")
                client.stdin.flush()
                fps += json.loads(client.stdout.readline())["fps"]
                client.wait(timeout=30)
        finally:
            for process in [*clients, server]:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
    cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
    mean = sum(fps) / len(fps)
    return {
        "cpu": cpu,
        "program_fps": (program1["composed"] - program0["composed"])
        / (program1["t"] - program0["t"]),
        "fps_min": min(fps),
        "fps_mean": mean,
        # Work is per frame: the cost of serving every viewer 30 fps.
        "cpu_at_30": cpu * 30 / max(mean, 0.1),
    }


def _ask(server: subprocess.Popen[str]) -> dict[str, float]:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("figures\n")
    server.stdin.flush()
    answer: dict[str, float] = json.loads(server.stdout.readline())
    return answer


def main(seconds: float, once: list[int], naive: list[int]) -> None:
    results: dict[tuple[str, int], dict[str, float]] = {}
    for mode, counts in (("naive", naive), ("once", once)):
        for count in counts:
            results[mode, count] = row = measure(mode, count, seconds)
            print(
                f"{mode} x{count}: server {row['cpu']:.0f}% of a core, "
                f"program {row['program_fps']:.1f} fps, "
                f"viewers {row['fps_min']:.1f} / {row['fps_mean']:.1f} fps",
                file=sys.stderr,
            )

    print(f"\nProgram 640x480@30 H.264 to N viewers, {seconds:.0f} s per row\n")
    print(
        "| design | viewers | server CPU | program fps | fps per viewer "
        "(min / mean) | server CPU at 30 fps each |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for (mode, count), row in sorted(results.items()):
        design = "encode once" if mode == "once" else "naive: encoder per viewer"
        print(
            f"| {design} | {count} | {row['cpu']:.0f}% | {row['program_fps']:.1f} "
            f"| {row['fps_min']:.1f} / {row['fps_mean']:.1f} "
            f"| {row['cpu_at_30']:.0f}% |"
        )

    print("\n| viewers | naive / once, server CPU at 30 fps each |")
    print("| ---: | ---: |")
    for count in sorted(set(once) & set(naive)):
        naive_cpu = results["naive", count]["cpu_at_30"]
        ratio = naive_cpu / results["once", count]["cpu_at_30"]
        print(f"| {count} | {ratio:.1f}x |")

    for mode, counts in (("once", once), ("naive", naive)):
        wide = sorted(counts)
        if mode == "once":
            wide = [n for n in wide if n >= 8]
        if len(wide) >= 2:
            low, high = wide[0], wide[-1]
            extra = results[mode, high]["cpu_at_30"] - results[mode, low]["cpu_at_30"]
            print(
                f"\n{mode}, {low} to {high} viewers: {extra / (high - low):.2f}% "
                "of a core per added viewer (at 30 fps each)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--once", default=",".join(map(str, ONCE_COUNTS)))
    parser.add_argument("--naive", default=",".join(map(str, NAIVE_COUNTS)))
    parser.add_argument("--serve", choices=["once", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--viewers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--link", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.data))
    elif args.viewers:
        asyncio.run(viewers(args.link, args.viewers))
    else:
        main(
            args.seconds,
            [int(n) for n in args.once.split(",") if n],
            [int(n) for n in args.naive.split(",") if n],
        )
