"""Chromium: a customer waits in a queue; the technician accepts the offer on the
console and sees the camera; the supervisor page shows the queue."""

from __future__ import annotations

import pytest

from tests.browser import chromium, frames_advancing, needs_chromium
from tests.conftest import RunningNode

pytestmark = [needs_chromium, pytest.mark.browser]


async def test_customer_waits_then_technician_accepts_on_the_console(
    node: RunningNode,
) -> None:
    async with chromium() as browser:
        phone = await (await browser.new_context(is_mobile=True)).new_page()
        await phone.goto(node.support_link("support"))
        await phone.click("#start")
        await phone.wait_for_selector("#state[data-state=queued]")
        assert await phone.inner_text("#queue-place") == "You're next in line."
        assert "as soon as someone is free" in await phone.inner_text("#queue-wait")
        assert await phone.inner_text("#end") == "Leave the queue"
        assert await phone.is_visible("#preview")

        # A supervisor's sign-in opens the figures, not a console taking customers.
        supervisor = await (await browser.new_context()).new_page()
        await supervisor.goto(node.login_link("lead", "supervisor"))
        assert supervisor.url == f"{node.base}/supervisor"
        row = 'tr[data-queue="support"] td:nth-child(2)'
        await supervisor.wait_for_function(
            f"() => document.querySelector('{row}')?.textContent === '1'"
        )
        assert await node.node.switchboard.router.presence("lead") is None

        console = await (await browser.new_context()).new_page()
        await console.goto(node.login_link("tech-1"))
        await console.wait_for_selector("#presence-state[data-status=available]")
        await console.click(".offer .accept")
        await phone.wait_for_selector("#state[data-state=live]", timeout=20_000)
        await frames_advancing(console, "section.session video", 30)
        await console.wait_for_selector("#presence-state[data-status=busy]")

        await console.click("section.session .end")
        await console.wait_for_selector("section.session .wrap:not([hidden])")
        await console.select_option("section.session .disposition", "resolved")
        await console.fill("section.session .notes", "descaled the machine")
        await console.click("section.session .wrap button")
        await console.wait_for_selector("section.session .saved:not([hidden])")
        await phone.wait_for_selector("#state[data-state=ended]")


async def test_an_admin_reaches_the_other_staff_pages_from_the_console(
    node: RunningNode,
) -> None:
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await page.goto(node.login_link("tech-1"))
        await page.wait_for_selector("#state[data-state=ready]")
        assert not await page.is_visible("#staff-nav")  # a technician: no links

        admin = await (await browser.new_context()).new_page()
        await admin.goto(node.login_link("ada", "admin"))
        assert admin.url.endswith("/console")
        await admin.wait_for_selector("#staff-nav:not([hidden])")
        await admin.click("#staff-nav a:has-text('Recordings')")
        await admin.wait_for_url("**/library")
        assert await admin.inner_text("h1") == "Recordings"
