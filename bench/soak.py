"""Soak: N support sessions at a time join, run and leave for M minutes.

A real node runs as a subprocess (so its memory and file descriptors are its
own); N slots each repeat: a customer (aiortc, camera and tone) opens a link, the
slot's technician takes it, media flows for `--hold-s`, then the customer either
ends the session or vanishes without a word (alternately). The node's RSS and open
file descriptors are sampled from /proc twice a second. Errors counted: failed
cycles, `error` messages either client received, and ERROR lines in the node's
log; all must be 0. Run from the repository root, inside a network namespace:

    unshare -n sh -c 'ip link set lo up && .venv/bin/python -m bench.soak'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.peers import Customer, Technician, wait_for
from tests.test_crash_recovery import ADMIN_KEY, ServerProcess


@dataclass
class Figures:
    cycles: int = 0
    failed: int = 0
    error_messages: int = 0
    rss_mb: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _sample(pid: int, figures: Figures) -> None:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                figures.rss_mb.append(int(line.split()[1]) / 1024)
    figures.fds.append(len(os.listdir(f"/proc/{pid}/fd")))


async def _link(base: str, body: dict[str, str]) -> str:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/links", json=body, headers=headers) as resp,
    ):
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["url"])


async def _slot(base: str, index: int, until: float, hold_s: float, f: Figures) -> None:
    name = f"soak-{index}"
    tech_http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    await Technician(base, tech_http).sign_in(
        await _link(base, {"kind": "login", "name": name})
    )
    try:
        while time.monotonic() < until:
            abrupt = f.cycles % 2 == 1
            try:
                await _cycle(base, name, tech_http, hold_s, abrupt, f)
                f.cycles += 1
            except Exception as exc:
                f.failed += 1
                f.failures.append(f"{name}: {exc!r}")
    finally:
        await tech_http.close()


async def _cycle(
    base: str,
    name: str,
    tech_http: aiohttp.ClientSession,
    hold_s: float,
    abrupt: bool,
    f: Figures,
) -> None:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    technician = Technician(base, tech_http)
    customer = Customer(base, http)
    try:
        await technician.join()
        direct = await _link(base, {"kind": "direct", "technician": name})
        session = await customer.join(direct)
        await technician.expect("session", session=session)
        await technician.take(session)
        await customer.expect("session", state="live", timeout_s=20)
        start = technician.video.frames
        held = time.monotonic() + hold_s
        await wait_for(lambda: time.monotonic() >= held, hold_s + 5, "hold")
        assert technician.video.frames > start, "no video during the hold"
        if abrupt:
            await http.close()  # no websocket close: the grace runs out
        else:
            await customer.send(type="end", session=session)
        await technician.expect("ended", timeout_s=30, session=session)
    finally:
        for client in (customer, technician):
            f.error_messages += sum(1 for m in client.messages if m["type"] == "error")
        await customer.close()
        await technician.close()
        await http.close()


async def soak(slots: int, minutes: float, hold_s: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data")
        server.start()
        figures = Figures()
        try:
            await server.ready()
            assert server.proc is not None
            pid = server.proc.pid
            _sample(pid, figures)
            until = time.monotonic() + minutes * 60

            async def sampler() -> None:
                while True:
                    _sample(pid, figures)
                    await asyncio.sleep(0.5)

            sampling = asyncio.get_running_loop().create_task(sampler())
            await asyncio.gather(
                *(_slot(server.base, i, until, hold_s, figures) for i in range(slots))
            )
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
            await asyncio.sleep(2)  # let the last graces run out before the final count
            _sample(pid, figures)
        finally:
            server.stop()
            log = server.log.read_text()
    error_lines = [line for line in log.splitlines() if " ERROR " in line]
    errors = figures.failed + figures.error_messages + len(error_lines)
    rows = [
        ("slots x minutes", f"{slots} x {minutes:g}"),
        ("sessions completed", str(figures.cycles)),
        ("failed cycles", str(figures.failed)),
        ("error messages to clients", str(figures.error_messages)),
        ("ERROR lines in the node's log", str(len(error_lines))),
        ("node RSS start / peak / end, MB", _three(figures.rss_mb)),
        ("node open fds start / peak / end", _three(figures.fds)),
    ]
    print("| figure | value |\n| --- | ---: |")
    for label, value in rows:
        print(f"| {label} | {value} |")
    for line in figures.failures[:5] + error_lines[:5]:
        print(line, file=sys.stderr)
    return 0 if errors == 0 else 1


def _three(values: list[float] | list[int]) -> str:
    return f"{values[0]:.0f} / {max(values):.0f} / {values[-1]:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=3, help="sessions at a time")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long")
    parser.add_argument("--hold-s", type=float, default=4.0, help="media per session")
    args = parser.parse_args()
    return asyncio.run(soak(args.slots, args.minutes, args.hold_s))


if __name__ == "__main__":
    sys.exit(main())
