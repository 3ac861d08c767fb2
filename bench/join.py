"""Join time: a customer opens the link in Chromium and taps Start; how long until
the technician decodes the customer's first frame?

Runs a real node in this process, an aiortc technician that takes every session,
and headless Chromium (Debian's, fake camera) as the customer. Prints p50/p95 of
each step over N joins. Run from the repository root:

    .venv/bin/python -m bench.join --joins 12
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from playwright.async_api import Browser

from tests.browser import chromium
from tests.conftest import RunningNode, node_config, start_node
from tests.peers import Technician, wait_for


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_join(node: RunningNode, browser: Browser, index: int) -> dict[str, float]:
    node_base = node.base
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    technician = Technician(node_base, http)
    await technician.sign_in(node.login_link(f"bench-{index}"))
    await technician.join()
    link = node.direct_link(f"bench-{index}")
    context = await browser.new_context()
    page = await context.new_page()
    try:
        t0 = time.monotonic()
        await page.goto(link)
        loaded = time.monotonic()
        await page.click("#start")
        summary = await technician.expect("session", timeout_s=20)
        joined = time.monotonic()
        await technician.take(summary["session"])
        await wait_for(lambda: technician.video.frames >= 1, 20, "first frame")
        first = time.monotonic()
    finally:
        await context.close()
        await technician.close()
        await http.close()
    return {
        "page load": loaded - t0,
        "tap to joined": joined - loaded,
        "joined to first frame": first - joined,
        "link to first frame": first - t0,
    }


async def main(joins: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = node_config(Path(tmp) / "data", record=True)
        node = await start_node(config)
        results: list[dict[str, float]] = []
        try:
            async with chromium() as browser:
                await one_join(node, browser, -1)  # warm-up, not counted
                for index in range(joins):
                    results.append(await one_join(node, browser, index))
                    print(
                        f"join {index + 1}/{joins}: "
                        f"{results[-1]['link to first frame'] * 1000:.0f} ms",
                        file=sys.stderr,
                    )
        finally:
            await node.runner.cleanup()
    print(f"\nJoin time over {joins} Chromium joins (ms)\n")
    print("| step | p50 | p95 | max |")
    print("| --- | ---: | ---: | ---: |")
    for step in results[0]:
        values = [r[step] * 1000 for r in results]
        print(
            f"| {step} | {_pct(values, 0.5):.0f} | {_pct(values, 0.95):.0f} "
            f"| {max(values):.0f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--joins", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(main(args.joins))
