"""Chromium console and phone pages: camera switch, annotation overlay, camera pause."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from playwright.async_api import FilePayload, Page

from tests.browser import chromium, frames_advancing, needs_chromium
from tests.conftest import RunningNode

pytestmark = [needs_chromium, pytest.mark.browser]

# Records every getUserMedia call's constraints on the phone page.
_RECORD_GUM = """
(() => {
  window.gumCalls = [];
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => {
    window.gumCalls.push(JSON.parse(JSON.stringify(constraints)));
    return original(constraints);
  };
})();
"""


def red_pixels(png: bytes) -> int:
    """Pixels of the overlay's red (240, 30, 60) in a screenshot."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return int(((r > 200) & (g < 80) & (b > 30) & (b < 110)).sum())


async def drag(page: Page, selector: str, start: Any, end: Any) -> None:
    box = await page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect(); "
        "return [r.x, r.y, r.width, r.height]; }",
    )
    x, y, w, h = box
    await page.mouse.move(x + w * start[0], y + h * start[1])
    await page.mouse.down()
    await page.mouse.move(x + w * end[0], y + h * end[1], steps=6)
    await page.mouse.up()


async def test_switch_camera_annotate_and_pause_between_console_and_phone(
    node: RunningNode,
) -> None:
    async with chromium() as browser:
        console = await (await browser.new_context()).new_page()
        await console.goto(node.login_link("tech-1"))
        await console.wait_for_selector("#state[data-state=ready]")
        phone_ctx = await browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        await phone_ctx.add_init_script(_RECORD_GUM)
        phone = await phone_ctx.new_page()
        await phone.goto(node.direct_link("tech-1"))
        await phone.click("#start")
        await phone.wait_for_selector("#state[data-state=live]", timeout=20_000)
        video = "section.session video"
        await frames_advancing(console, video, 20)

        # Switch camera: the phone asks for the front camera and keeps streaming.
        await console.click("section.session .switch-camera")
        await console.wait_for_selector(
            "section.session .camera-note[data-state]", timeout=10_000
        )
        calls = await phone.evaluate("window.gumCalls")
        facing = [c["video"].get("facingMode") for c in calls if c.get("video")]
        assert facing[0] == {"ideal": "environment"}
        assert any(f in ({"exact": "user"}, {"ideal": "user"}) for f in facing[1:])
        live_track = await phone.evaluate(
            "document.getElementById('preview').srcObject.getVideoTracks()[0].readyState"
        )
        assert live_track == "live"
        frames = await frames_advancing(console, video, 0)
        await frames_advancing(console, video, frames + 30)

        # Freeze and draw an arrow: the phone shows the still with the arrow.
        await console.click("section.session .freeze")
        await phone.wait_for_selector("#stage[data-frozen=true] img.still")
        await phone.wait_for_function(
            "() => document.querySelector('#stage img.still').complete"
        )
        stage = phone.locator("#stage")
        before = red_pixels(await stage.screenshot())
        await drag(console, "section.session canvas.overlay", (0.2, 0.5), (0.8, 0.5))
        await phone.wait_for_selector("#stage[data-strokes='1']")
        await console.wait_for_selector("section.session .undo:not([disabled])")
        after = red_pixels(await stage.screenshot())
        assert after > before + 150, (before, after)
        # The arrow runs across the middle of the picture, left to right.
        png = await stage.screenshot()
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        h, w = image.shape[:2]
        middle = image[int(h * 0.4) : int(h * 0.6)]
        _, g, r = (middle[..., i].astype(int) for i in range(3))
        columns = np.asarray(((r > 200) & (g < 80)).any(axis=0))
        assert float(columns[int(w * 0.3) : int(w * 0.7)].mean()) > 0.9

        await console.click("section.session .freeze")  # unfreeze
        await phone.wait_for_selector("#stage:not([data-frozen])")

        # Double-click the live picture: digital zoom on the server, centred there.
        canvas = console.locator("section.session canvas.overlay")
        size = await canvas.bounding_box()
        assert size is not None
        await canvas.dblclick(
            position={"x": size["width"] * 0.25, "y": size["height"] * 0.5}
        )
        await console.wait_for_function(
            "() => document.querySelector('section.session .camera-state')"
            ".textContent.includes('Digital zoom 200%')"
        )
        sid = next(iter(node.node.desk.sessions))
        zoom = node.node.desk.sessions[sid].tools.stage.look.zoom
        assert zoom is not None and zoom.factor == 2.0 and zoom.x < 0.4
        await console.click("section.session .digital-zoom")  # back to 1x
        await console.wait_for_selector(
            "section.session .camera-state[data-state=on]:empty", state="attached"
        )

        # Privacy: the phone pauses its camera; the console says so.
        await phone.click("#pause")
        await console.wait_for_selector(
            "section.session .camera-state[data-state=paused]", timeout=10_000
        )
        words = await console.inner_text("section.session .camera-state")
        assert "paused" in words.lower()
        await phone.click("#pause")
        await console.wait_for_selector(
            "section.session .camera-state[data-state=on]",
            state="attached",
            timeout=10_000,
        )

        # Evidence and talk: a snapshot and the phone's own photo land in the
        # console's gallery; a PDF reaches the phone; chat goes both ways.
        session = "section.session"
        await console.click(f"{session} .snapshot")
        await console.wait_for_selector(f"{session} .gallery li[data-kind=snapshot]")
        await console.click(f"{session} .photo")
        await console.wait_for_selector(
            f"{session} .camera-note[data-state=ok]", timeout=10_000
        )
        await console.wait_for_selector(f"{session} .gallery li[data-kind=photo]")
        await console.set_input_files(
            f"{session} .push-file",
            files=FilePayload(
                name="manual.pdf", mimeType="application/pdf",
                buffer=b"%PDF-1.4\n%%EOF\n",
            ),
        )  # fmt: skip
        await phone.wait_for_selector("#files:not([hidden]) #file-list button")
        await phone.fill("#chat-text", "The light is blinking")
        await phone.click("#chat-form button")
        await console.wait_for_selector(f"{session} .chat-lines li[data-role=customer]")
        assert "blinking" in await console.inner_text(f"{session} .chat-lines")

        await phone.click("#end")
        await console.wait_for_selector("section.session .state[data-state=ended]")
