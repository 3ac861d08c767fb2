"""Real Chromium on the trainer's pages: the library and the player."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.browser import chromium, needs_chromium
from tests.conftest import RunningNode, node_config, start_node
from tests.peers import wait_for
from tests.recorded import record_room

pytestmark = [needs_chromium, pytest.mark.browser]


async def _indexed_room(node: RunningNode) -> str:
    """A demo-room recording, indexed by the library (its thumbnail made)."""
    room = await record_room(node)
    folder = node.node.library.recordings_dir / room
    await wait_for(lambda: (folder / "thumb.jpg").exists(), 10, "the recording indexed")
    return room


async def test_clicking_a_timeline_event_seeks_the_video_and_plays(
    tmp_path: Path,
) -> None:
    node = await start_node(node_config(tmp_path / "data", library_scan_s=0.2))
    try:
        room = await _indexed_room(node)
        library = node.node.library
        async with chromium() as browser:
            page = await (await browser.new_context()).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(node.login_link("tina", "trainer"))
            assert page.url.endswith("/library")
            await page.wait_for_selector(f"#recordings tr[data-id='{room}'] img")
            await page.click(f"#recordings tr[data-id='{room}'] td:nth-child(2)")
            await page.wait_for_url("**/player/*")
            await page.wait_for_selector("#state[data-state=ready]")
            await page.wait_for_function(
                "() => document.getElementById('video').readyState >= 1",
                timeout=10_000,
            )
            assert await page.eval_on_selector("#video", "v => v.currentTime") == 0

            switch = page.locator("#timeline li[data-kind=switch]")
            at = float(await switch.get_attribute("data-at") or "nan")
            assert 1.5 < at < 2.5
            markers = await page.locator("#scrubber .marker").count()
            assert markers == await page.locator("#timeline li").count()
            await switch.click()
            # The video jumps to the event and plays on from there.
            await page.wait_for_function(
                """(at) => {
                    const v = document.getElementById('video');
                    return !v.paused && v.currentTime > at + 0.2
                        && v.currentTime < at + 1.5;
                }""",
                arg=at,
                timeout=10_000,
            )
            assert await page.get_attribute("#state", "data-state") == "playing"
            assert await switch.get_attribute("class") == "current"

            # Keyboard: space pauses; "p" goes back to the start of this event,
            # then to the one before it.
            await page.keyboard.press(" ")
            await page.wait_for_function(
                "() => document.getElementById('video').paused"
            )
            await page.evaluate(
                "(at) => { document.getElementById('video').currentTime = at + 1; }",
                at,
            )
            await page.wait_for_function(
                "(at) => document.getElementById('video').currentTime >= at + 0.99",
                arg=at,
            )
            await page.keyboard.press("p")
            await page.wait_for_function(
                "(at) => Math.abs(document.getElementById('video').currentTime - at)"
                " < 0.05",
                arg=at,
            )
            await page.keyboard.press("p")
            await page.wait_for_function(
                "(at) => document.getElementById('video').currentTime < at - 0.5",
                arg=at,
            )
            assert errors == []
            player_url = page.url

            # A trainer cannot delete; an admin can, with two clicks.
            assert not await page.is_visible("#delete")
            admin = await (await browser.new_context()).new_page()
            await admin.goto(node.login_link("ada", "admin"))
            await admin.goto(player_url)
            await admin.wait_for_selector("#state[data-state=ready]")
            await admin.click("#delete")
            assert (library.recordings_dir / room).exists()  # only asked so far
            await admin.click("#delete")
            await admin.wait_for_url("**/library")
            assert not (library.recordings_dir / room).exists()
    finally:
        await node.runner.cleanup()


async def test_clip_export_downloads_and_a_bad_range_says_why_on_the_player(
    tmp_path: Path,
) -> None:
    node = await start_node(node_config(tmp_path / "data", library_scan_s=0.2))
    try:
        room = await _indexed_room(node)
        async with chromium() as browser:
            context = await browser.new_context(accept_downloads=True)
            page = await context.new_page()
            await page.goto(node.login_link("tina", "trainer"))
            await page.click(f"#recordings tr[data-id='{room}'] td:nth-child(2)")
            await page.wait_for_url("**/player/*")
            await page.wait_for_selector("#state[data-state=ready]")
            player_url = page.url

            # A range the server refuses: the trainer stays on the player and
            # reads the reason, instead of landing on a page of raw JSON.
            await page.fill("#clip-start", "3")
            await page.fill("#clip-end", "1")
            await page.click("#clip button[type=submit]")
            await page.wait_for_selector("#error:not([hidden])", timeout=10_000)
            assert "start < end" in await page.inner_text("#error")
            assert page.url == player_url
            assert await page.is_visible("#video")

            await page.fill("#clip-start", "0")
            await page.fill("#clip-end", "2")
            async with page.expect_download() as download_info:
                await page.click("#clip button[type=submit]")
            download = await download_info.value
            assert download.suggested_filename == f"{room}-0-2.mp4"
            saved = tmp_path / "clip.mp4"
            await download.save_as(saved)
            assert not await page.is_visible("#error")
        with av.open(str(saved)) as clip:
            frames = sum(1 for _ in clip.decode(video=0))
        assert frames > 10
    finally:
        await node.runner.cleanup()


async def test_a_mistyped_critical_flag_is_refused_not_dropped(tmp_path: Path) -> None:
    node = await start_node(node_config(tmp_path / "data"))
    try:
        async with chromium() as browser:
            page = await (await browser.new_context()).new_page()
            await page.goto(node.login_link("ada", "admin"))
            await page.goto(f"{node.base}/library")
            await page.wait_for_selector("#forms-box:not([hidden])")

            await page.fill("#form-name", "Calls")
            await page.fill("#form-criteria", "Greets | 1\nSafety check | 2 | critcal")
            await page.click("#new-form button[type=submit]")
            await page.wait_for_selector("#error:not([hidden])", timeout=10_000)
            assert "'critical' must be true or false" in await page.inner_text("#error")
            assert await node.node.library.forms() == []

            await page.fill("#form-criteria", "Greets | 1\nSafety check | 2 | critical")
            await page.click("#new-form button[type=submit]")
            await page.wait_for_selector("#forms li")
            assert "Safety check (2, critical)" in await page.inner_text("#forms")
            assert not await page.is_visible("#error")
    finally:
        await node.runner.cleanup()
