"""Chromium: on the console a technician adds an expert, who helps and leaves; then
hands the customer to that colleague by name. The customer's page never reloads."""

from __future__ import annotations

import pytest

from tests.browser import chromium, frames_advancing, needs_chromium
from tests.conftest import RunningNode

pytestmark = [needs_chromium, pytest.mark.browser]


async def test_console_adds_an_expert_then_transfers_to_them_by_name(
    node: RunningNode,
) -> None:
    async with chromium() as browser:
        first = await (await browser.new_context()).new_page()
        await first.goto(node.login_link("tech-a"))
        await first.wait_for_selector("#presence-state[data-status=available]")

        phone = await (await browser.new_context(is_mobile=True)).new_page()
        await phone.goto(node.support_link("support"))
        await phone.click("#start")
        await first.click(".offer .accept")
        await phone.wait_for_selector("#state[data-state=live]", timeout=20_000)

        # A colleague signs in; the first console lists them for "Add expert".
        other = await (await browser.new_context()).new_page()
        await other.goto(node.login_link("tech-b"))
        await other.wait_for_selector("#presence-state[data-status=available]")
        card = "section.session"
        await first.wait_for_selector(
            f"{card} .expert-technician option[value=tech-b]", state="attached"
        )
        await first.select_option(f"{card} .expert-technician", "tech-b")
        await first.click(f"{card} .invite")
        await first.wait_for_selector(f"{card} .expert-state:has-text('Inviting')")

        await other.wait_for_selector(".offer[data-expert=true]")
        assert "tech-a asks for your help" in await other.inner_text(".offer .who")
        await other.click(".offer .accept")
        await other.wait_for_selector(f"{card} .expert-row:not([hidden])")
        await frames_advancing(other, f"{card} video", 20)
        await first.wait_for_selector(f"{card} .expert-state[data-expert=tech-b]")
        await phone.wait_for_function(
            "() => document.querySelector('#state').textContent"
            ".includes('an expert, tech-b')"
        )

        # Chat says who wrote each line: the expert's line is not the technician's.
        await other.fill(f"{card} .chat-text", "Check the gasket")
        await other.click(f"{card} .chat-form button")
        mine = f"{card} .chat-lines li:has-text('Check the gasket')"
        await other.wait_for_selector(mine)
        await first.wait_for_selector(mine)
        assert await other.inner_text(mine) == "You: Check the gasket"
        assert await first.inner_text(mine) == "tech-b: Check the gasket"

        # The expert leaves; the session goes on.
        await other.click(f"{card} .leave")
        await other.wait_for_selector(f"{card} .state[data-state=ended]")
        await first.wait_for_selector(
            f"{card} .expert-state[data-expert='']", state="attached"
        )
        await other.wait_for_selector("#presence-state[data-status=available]")
        assert await phone.get_attribute("#state", "data-state") == "live"

        # Then the customer is handed to tech-b by name, without rejoining.
        await first.wait_for_selector(
            f"{card} .transfer-technician option[value=tech-b]", state="attached"
        )
        await first.select_option(f"{card} .transfer-technician", "tech-b")
        await first.click(f"{card} .transfer")
        await phone.wait_for_selector("#queue-place[data-technician=tech-b]")
        words = await phone.inner_text("#queue-place")
        assert words == "You're being connected to tech-b."
        await other.wait_for_selector(".offer[data-expert=false]")
        assert "Transferred to you" in await other.inner_text(".offer .who")
        await other.click(".offer .accept")
        await phone.wait_for_selector("#state[data-state=live]", timeout=20_000)
        await frames_advancing(other, f"{card}:last-of-type video", 20)
        await first.wait_for_selector("#presence-state[data-status=wrap-up]")
