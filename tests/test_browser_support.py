"""Real Chromium pages (fake camera and microphone) as customer and technician."""

from __future__ import annotations

import aiohttp
import pytest

from tests.browser import chromium, frames_advancing, needs_chromium
from tests.conftest import RunningNode

pytestmark = [needs_chromium, pytest.mark.browser]


async def test_console_plays_the_customers_camera(node: RunningNode) -> None:
    async with chromium() as browser:
        console_ctx = await browser.new_context()
        console = await console_ctx.new_page()
        await console.goto(node.login_link("tech-1"))
        assert console.url.endswith("/console")
        await console.wait_for_selector("#state[data-state=ready]")
        await console.click("#new-link")
        await console.wait_for_selector("#link-box:not([hidden])")
        link = await console.input_value("#link-url")
        assert link.startswith(f"{node.base}/j/")
        assert "<svg" in await console.inner_html("#link-qr")

        phone_ctx = await browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        phone = await phone_ctx.new_page()
        await phone.goto(link)
        # Before the camera starts, the customer is told the call is recorded.
        assert "recorded" in await phone.inner_text("#recorded-note")
        assert await phone.is_visible("#recorded-note")
        await phone.click("#start")
        await phone.wait_for_selector("#state[data-state=live]", timeout=20_000)
        assert not await phone.is_visible("#start")
        assert await phone.is_visible("#end")

        first = await frames_advancing(console, "section.session video", 30)
        later = await frames_advancing(console, "section.session video", first + 20)
        assert later > first

        # The technician turns their camera on: the phone shows it in the inset.
        await console.click("#camera")
        await phone.wait_for_selector("#technician-video:not([hidden])")
        await frames_advancing(phone, "#technician-video", 10)
        size = await console.eval_on_selector(
            "section.session video", "v => [v.videoWidth, v.videoHeight]"
        )
        assert size[0] >= 320 and size[1] >= 240

        await phone.click("#end")
        await phone.wait_for_selector("#state[data-state=ended]")
        assert await phone.inner_text("#state") == "You ended the session. Thank you."
        await console.wait_for_selector("section.session .state[data-state=ended]")
        # Once ended, neither side offers controls that can no longer work, nor
        # an empty black picture.
        for selector in ("#stage", "#pause", "#chat-form"):
            assert not await phone.is_visible(selector), selector
        for selector in (".stage", ".tools", ".chat-form"):
            assert not await console.is_visible(f"section.session {selector}")
    assert await node.metric("peer_connections") == 0


async def test_link_opened_on_another_device_is_refused(node: RunningNode) -> None:
    link = node.direct_link("tech-1")
    async with chromium() as browser:
        first = await (await browser.new_context()).new_page()
        await first.goto(link)
        await first.wait_for_selector("#start")
        other = await (await browser.new_context()).new_page()
        response = await other.goto(link)
        assert response is not None and response.status == 409
        assert "another device" in await other.inner_text("#reason")
        again = await first.reload()
        assert again is not None and again.status == 200


async def test_refused_camera_gets_words_and_a_retry(node: RunningNode) -> None:
    async with chromium(fake_ui=False) as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(node.direct_link("tech-1"))
        await page.click("#start")
        await page.wait_for_selector("#error:not([hidden])")
        assert "refused" in (await page.inner_text("#error")).lower()
        assert await page.inner_text("#start") == "Try again"
        assert await page.is_enabled("#start")


async def test_expired_and_forged_links_show_a_clear_page(node: RunningNode) -> None:
    expired = node.direct_link("tech-1", ttl_s=-5)
    forged = expired[:-3] + "AAA"
    async with aiohttp.ClientSession() as http:
        async with http.get(expired) as resp:
            assert resp.status == 410
            assert "expired" in await resp.text()
        async with http.get(forged) as resp:
            assert resp.status == 403
            assert "not valid" in await resp.text()
    assert node.node.desk.sessions == {}
