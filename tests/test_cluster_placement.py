"""Placement: two nodes in this process on one Redis; where new sessions go."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from server.links import Kind
from tests.conftest import RunningNode, free_port, node_config, start_node
from tests.peers import Customer, wait_for
from tests.redis_server import RedisServer


@pytest.fixture
async def pair(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[list[RunningNode]]:
    redis_server.flush()
    nodes = [
        await start_node(
            node_config(tmp_path / name, redis_url=redis_server.url, node_timeout_s=1.5)
        )
        for name in ("a", "b")
    ]
    yield nodes
    for node in nodes:
        await node.runner.cleanup()


def _sees_both(node: RunningNode) -> bool:
    assert node.node.cluster is not None
    return len(node.node.cluster.nodes) == 2


async def test_a_burst_of_new_sessions_spreads_over_the_nodes(
    pair: list[RunningNode], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    await wait_for(lambda: _sees_both(a) and _sees_both(b), 10, "both nodes")
    assert await a.metric("cluster_nodes") == 2
    assert await a.metric("store_up") == 1
    landed: Counter[str] = Counter()
    for _ in range(10):
        token, _ = a.node.signer.sign(Kind.SUPPORT, 600, queue="support")
        headers = {"Accept": "application/json"}
        async with http.get(f"{a.base}/j/{token}", headers=headers) as resp:
            assert resp.status == 200
            landed[str(resp.url.origin())] += 1
    # Nobody joined yet, so heartbeats show no load: the placements themselves
    # must spread the burst.
    assert landed[a.base] >= 3 and landed[b.base] >= 3, landed


async def test_sessions_of_a_stopped_node_are_placed_again(
    pair: list[RunningNode], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    await wait_for(lambda: _sees_both(a) and _sees_both(b), 10, "both nodes")
    assert a.node.cluster is not None and b.node.cluster is not None
    token, _ = a.node.signer.sign(Kind.SUPPORT, 600, queue="support")
    url = f"/j/{token}"
    headers = {"Accept": "application/json"}
    homes = set()
    for node in (a, b):
        async with http.get(node.base + url, headers=headers) as resp:
            homes.add(str(resp.url.origin()))
            session = (await resp.json())["session"]
    assert len(homes) == 1  # one session, one home, whichever node is asked

    home, other = (a, b) if homes == {a.base} else (b, a)
    await home.runner.cleanup()  # a clean stop leaves the cluster at once
    pair.remove(home)
    assert other.node.cluster is not None
    cluster = other.node.cluster
    await wait_for(lambda: len(cluster.nodes) == 1, 10, "one node")
    async with http.get(other.base + url, headers=headers) as resp:
        assert resp.status == 200
        assert str(resp.url.origin()) == other.base
        assert (await resp.json())["session"] == session


async def test_a_node_starts_while_redis_is_away_and_says_so(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    node = await start_node(node_config(tmp_path / "data", redis_url=nowhere))
    try:
        token, _ = node.node.signer.sign(Kind.DIRECT, 600, technician="tech-1")
        headers = {"Accept": "application/json"}
        async with http.get(f"{node.base}/j/{token}", headers=headers) as resp:
            assert resp.status == 503
            assert (await resp.json())["code"] == "unavailable"
        async with http.get(f"{node.base}/healthz") as resp:
            health = await resp.json()
        assert health["status"] == "degraded"
        assert health["cluster"]["store"] == "unavailable"
    finally:
        await node.runner.cleanup()


async def test_an_ended_session_link_is_refused_on_every_node(
    pair: list[RunningNode], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    await wait_for(lambda: _sees_both(a) and _sees_both(b), 10, "both nodes")
    token, _ = a.node.signer.sign(Kind.DIRECT, 600, technician="tech-1")
    customer = Customer(a.base, http)
    try:
        await customer.open_link(f"{a.base}/j/{token}")
        await customer.connect_ws()
        await customer.send(type="join", token=customer.boot["token"])
        await customer.expect("welcome")
        await customer.send(type="end", session=customer.boot["session"])
        await customer.expect("ended")
    finally:
        await customer.close()
    home = a if customer.base == a.base else b
    await wait_for(lambda: not home.node.desk.sessions, 10, "session closed")
    ended = f"cluster:ended:{customer.boot['session']}"
    for _ in range(100):  # the closing node writes the mark just after closing
        if await a.node.store.get(ended) is not None:
            break
        await asyncio.sleep(0.05)
    for node in (a, b):
        headers = {"Accept": "application/json"}
        async with http.get(f"{node.base}/j/{token}", headers=headers) as resp:
            body = await resp.json()
            assert (resp.status, body["code"]) == (410, "used"), body
