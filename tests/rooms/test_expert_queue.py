""" "Talk to an expert" from a demo room leads into the room's own support queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import RunningNode, node_config, start_node
from tests.peers import Customer


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A node with two queues whose demo rooms default to the espresso one."""
    config = node_config(
        tmp_path / "data", queues=["support", "espresso"], room_queue="espresso"
    )
    running = await start_node(config)
    yield running
    await running.runner.cleanup()


async def _expert_link(
    shop: RunningNode, http: aiohttp.ClientSession, room: str
) -> str:
    viewer = Customer(shop.base, http)
    try:
        boot = await viewer.open_link(shop.node.rooms.viewer_url(room))
        await viewer.connect_ws()
        await viewer.send(type="enter", token=boot["token"], ref="in")
        await viewer.expect("welcome", ref="in")
        await viewer.send(type="expert", room=room, ref="x")
        return str((await viewer.expect("expert_link", ref="x"))["url"])
    finally:
        await viewer.close()


async def test_talk_to_an_expert_queues_the_viewer_in_the_rooms_queue(
    shop: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    # A room made with the configured default, and one a presenter opens for the
    # general support queue.
    default = shop.node.rooms.create("Grinder demo", "host")
    assert default.support_queue == "espresso"
    presenter = Customer(shop.base, tech_http)
    async with tech_http.get(
        shop.login_link("host", "presenter"), allow_redirects=False
    ) as resp:
        assert resp.status == 303
    try:
        await presenter.connect_ws()
        await presenter.send(
            type="studio", title="Kettle demo", queue="toasters", ref="bad"
        )
        assert (await presenter.expect("error", ref="bad"))["code"] == "no_queue"
        await presenter.send(type="studio", title="Kettle demo", queue="support")
        opened = await presenter.expect("welcome")
    finally:
        await presenter.close()
    assert shop.node.rooms.get(opened["room"]).support_queue == "support"

    for room, queue in ((default.id, "espresso"), (opened["room"], "support")):
        customer = Customer(shop.base, http)
        try:
            await customer.open_link(await _expert_link(shop, http, room))
            await customer.connect_ws()
            await customer.send(type="join", token=customer.boot["token"])
            place = await customer.expect("queue")
            assert (place["queue"], place["position"]) == (queue, 1)
        finally:
            await customer.close()
