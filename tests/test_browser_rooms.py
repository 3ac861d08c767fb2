"""Demo rooms in real Chromium: a viewer of the built-in demo, the studio, a phone."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.async_api import Page

from server.media.program import bgr
from server.rooms import Room
from tests.browser import chromium, frames_advancing, needs_chromium
from tests.conftest import RunningNode, node_config, start_node
from tests.peers import wait_for

pytestmark = [needs_chromium, pytest.mark.browser]

_COUNT_CAMERA_PROMPTS = """
window.cameraPrompts = 0;
const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.cameraPrompts += 1;
  return original(constraints);
};
"""

_SNAPSHOT = """video => {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/png");
}"""


@pytest.fixture
async def demo_node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await start_node(node_config(tmp_path / "data", demo=True))
    yield running
    await running.runner.cleanup()


async def _look(page: Page, room: Room) -> str:
    """Which synthetic camera of `room` the page's program video shows now."""
    url = await page.eval_on_selector("#program", _SNAPSHOT)
    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    decoded = cv2.imdecode(png, cv2.IMREAD_COLOR)
    assert decoded is not None, "the snapshot is not a picture"
    shown = decoded.astype(np.int16)
    distance: dict[str, float] = {}
    for camera in room.cameras.values():
        assert camera.synthetic is not None
        drawn = bgr(camera.synthetic.draw(0.0)).astype(np.int16)
        if drawn.shape != shown.shape:
            size = (shown.shape[1], shown.shape[0])
            drawn = cv2.resize(drawn.astype(np.uint8), size).astype(np.int16)
        distance[camera.id] = float(np.abs(shown - drawn).mean())
    return min(distance, key=lambda c: distance[c])


async def test_viewer_watches_the_demo_and_the_studio_switches_it(
    demo_node: RunningNode,
) -> None:
    rooms = demo_node.node.rooms
    demo = rooms.get("demo")
    async with chromium() as browser:
        viewer_ctx = await browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        await viewer_ctx.add_init_script(_COUNT_CAMERA_PROMPTS)
        viewer = await viewer_ctx.new_page()
        await viewer.goto(rooms.viewer_url("demo"))
        await viewer.wait_for_selector("#state[data-state=connected]")
        await frames_advancing(viewer, "#program", 30)
        assert await viewer.evaluate("window.cameraPrompts") == 0
        assert await viewer.eval_on_selector("#program", "v => v.muted")
        assert await viewer.is_visible("#unmute")
        assert await viewer.inner_text("#title") == "Espresso machine demo"
        await viewer.wait_for_selector("#viewers[data-count='1']")
        assert await _look(viewer, demo) == "wide"

        studio_ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
        studio = await studio_ctx.new_page()
        await studio.goto(rooms.studio_url("demo"))
        assert studio.url.endswith("/studio?room=demo")
        await studio.wait_for_selector("#cameras button.put >> nth=1")
        await frames_advancing(studio, "#multiview", 5)
        await studio.keyboard.press("2")
        await studio.wait_for_selector(
            "#cameras button[data-camera=close][data-on-air=true]"
        )
        await wait_for_look(viewer, demo, "close")
        await studio.keyboard.press("1")
        await wait_for_look(viewer, demo, "wide")

        # Chat both ways, a question pinned for everyone.
        await viewer.fill("#chat-name", "Sam")
        await viewer.fill("#chat-text", "Looks great")
        await viewer.click("#chat-form button")
        await studio.wait_for_selector("#chat li:has-text('Sam: Looks great')")
        await viewer.fill("#ask-text", "How loud is the grinder?")
        await viewer.click("#ask-form button")
        await studio.click("#questions li .q-pin")
        await viewer.wait_for_selector("#pinned:has-text('How loud is the grinder?')")

        # Talk to an expert: a support link.
        await viewer.click("#expert")
        await viewer.wait_for_selector("#expert-link:not([hidden])")
        href = await viewer.get_attribute("#expert-link", "href")
        assert href is not None and href.startswith(f"{demo_node.base}/j/")
        # The queue opens on the same page; the demo goes on playing, small.
        expert = viewer.frame_locator("#expert-frame")
        await expert.locator("#start").click()
        await expert.locator("#state[data-state=queued]").wait_for(timeout=20_000)
        assert await expert.locator("#queue-place").inner_text() == (
            "You're next in line."
        )
        assert "small" in (await viewer.get_attribute("#program-stage", "class") or "")
        now = await frames_advancing(viewer, "#program", 0)
        await frames_advancing(viewer, "#program", now + 15)
        router = demo_node.node.switchboard.router
        assert [e.queue for e in await router.entries()] == [demo.support_queue]


async def wait_for_look(page: Page, room: Room, camera: str) -> None:
    looks: list[str] = []

    async def poll() -> bool:
        looks.append(await _look(page, room))
        return looks[-1] == camera

    for _ in range(50):
        if await poll():
            return
        await page.wait_for_timeout(100)
    raise AssertionError(f"the viewer never showed {camera}: {looks[-5:]}")


async def test_studio_publishes_two_cameras_and_a_phone_joins_as_a_third(
    node: RunningNode,
) -> None:
    async with chromium() as browser:
        studio_ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
        studio = await studio_ctx.new_page()
        await studio.goto(node.login_link("pat", "presenter"))
        await studio.fill("#create-title", "Kettle demo")
        await studio.click("#create")
        await studio.wait_for_selector("#studio:not([hidden])")
        assert "/j/" in await studio.input_value("#viewer-url")
        assert "<svg" in await studio.inner_html("#viewer-qr")
        room = next(iter(node.node.rooms.rooms.values()))
        assert room.title == "Kettle demo"

        for name in ("Wide", "Close-up"):
            await studio.fill("#camera-name", name)
            await studio.click("#add-camera")
            await studio.wait_for_selector(f"#cameras button:has-text('{name}')")
        await wait_for(
            lambda: (
                len(room.cameras) == 2
                and all(room.program.live(c) for c in room.cameras)
            ),
            20,
            "two studio cameras live",
        )

        await studio.fill("#phone-name", "Top")
        await studio.click("#camera-link")
        await studio.wait_for_selector("#camera-box:not([hidden])")
        assert "<svg" in await studio.inner_html("#camera-qr")
        phone_ctx = await browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        phone = await phone_ctx.new_page()
        await phone.goto(await studio.input_value("#camera-url"))
        await phone.click("#start")
        await phone.wait_for_selector("#state[data-state=live]", timeout=20_000)
        await studio.wait_for_selector(
            "#cameras button[data-live=true]:has-text('3 Top')"
        )
        await studio.keyboard.press("3")
        phone_camera = next(c for c in room.cameras.values() if c.name == "Top")
        await wait_for(lambda: room.program.shot.main == phone_camera.id, 5, "3 on air")
        await frames_advancing(studio, "#program", 30)

        await studio.click("#end")
        await phone.wait_for_selector("#state[data-state=ended]")
        await studio.wait_for_selector("#state[data-state=ended]")
    # Everyone is told first; the room then frees its peers and leaves the list.
    await wait_for(lambda: node.node.rooms.rooms == {}, 10, "the room closed")
