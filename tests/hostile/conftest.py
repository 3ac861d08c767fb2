"""Fixtures for the hostile-input tests: nodes with tightened limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningNode, node_config, start_node
from tests.peers import Customer, Technician

NodeFactory = Callable[..., Awaitable[RunningNode]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start nodes with config changes; all are stopped after the test."""
    started: list[RunningNode] = []

    async def make(**changes: Any) -> RunningNode:
        running = await start_node(
            node_config(tmp_path / f"data-{len(started)}", **changes)
        )
        started.append(running)
        return running

    yield make
    for running in started:
        await running.runner.cleanup()


async def open_customer(
    node: RunningNode, http: aiohttp.ClientSession, link: str = ""
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Open a customer link and join its session over a new websocket."""
    async with http.get(
        link or node.direct_link("tech-1"), headers={"Accept": "application/json"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        boot: dict[str, Any] = await resp.json()
    ws = await http.ws_connect(f"{node.base}/ws")
    await ws.send_json({"v": 1, "type": "join", "token": boot["token"], "ref": "j"})
    assert (await next_of(ws, "welcome"))["ref"] == "j"
    return ws, boot


async def next_of(
    ws: aiohttp.ClientWebSocketResponse, kind: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """The next message of one type, skipping others."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=timeout_s)
        if message["type"] == kind:
            return message


async def live_session(
    base: str,
    login: str,
    direct: str,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
) -> tuple[Customer, Technician, str]:
    """A signed-in technician and a customer, both connected: the session is live.

    The caller closes both clients.
    """
    technician = Technician(base, tech_http)
    customer = Customer(base, http)
    await technician.sign_in(login)
    await technician.join()
    session = await customer.join(direct)
    await technician.expect("session", session=session)
    await technician.take(session)
    await customer.expect("session", state="live", timeout_s=15)
    return customer, technician, session
