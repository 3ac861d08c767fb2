"""Headless Chromium from Debian, driven by Playwright, with fake camera devices.

Never downloads a browser: `CHROMIUM` is the system binary. Flags keep WebRTC on
loopback and the browser off the network (FACTS.md).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, Page, async_playwright

__all__ = ["CHROMIUM", "chromium", "frames_advancing", "needs_chromium"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed"
)

_FLAGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream=fps=30",
]


@asynccontextmanager
async def chromium(*, fake_ui: bool = True) -> AsyncIterator[Browser]:
    """A fresh headless Chromium; `fake_ui` grants camera prompts automatically."""
    flags = list(_FLAGS)
    if fake_ui:
        flags.append("--use-fake-ui-for-media-stream")
    # Playwright gives every launch a fresh, temporary profile directory.
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=flags
        )
        try:
            yield browser
        finally:
            await browser.close()


async def frames_advancing(page: Page, selector: str, more_than: int = 30) -> int:
    """Wait until the video at `selector` has decoded more than `more_than` frames."""
    await page.wait_for_function(
        """([sel, n]) => {
            const v = document.querySelector(sel);
            return v && Number(v.dataset.frames || 0) > n && !v.paused;
        }""",
        arg=[selector, more_than],
        timeout=20_000,
    )
    return int(await page.eval_on_selector(selector, "v => Number(v.dataset.frames)"))
