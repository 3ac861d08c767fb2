"""Routing on two nodes at once: two Routers, each with its own Redis connections."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.routing import EntryState, QueueSettings, Router, RoutingEvent
from server.store.redis import RedisStore
from tests.redis_server import RedisServer

QUEUES = [QueueSettings("support", wrap_up_s=0.0, offer_timeout_s=60)]


@pytest.fixture
async def two_nodes(redis_server: RedisServer) -> AsyncIterator[list[Router]]:
    prefix = f"cluster-{secrets.token_hex(4)}:"
    stores = [RedisStore(redis_server.url, prefix=prefix) for _ in range(2)]
    yield [Router(store, QUEUES) for store in stores]
    for store in stores:
        await store.close()


async def test_fifty_customers_five_technicians_two_nodes_each_served_once(
    two_nodes: list[Router],
) -> None:
    offered: Counter[tuple[str, str]] = Counter()
    for router in two_nodes:

        def seen(event: RoutingEvent, data: dict[str, Any]) -> None:
            if event == RoutingEvent.OFFERED:
                offered[(data["entry"].id, data["technician"])] += 1

        router.listen(seen)
    # Technician i's console is on node i % 2; customers arrive on both at once.
    home = {f"tech-{i}": two_nodes[i % 2] for i in range(5)}
    await asyncio.gather(
        *(router.sign_in(name, queues=["support"]) for name, router in home.items())
    )
    await asyncio.gather(
        *(
            two_nodes[i % 2].enqueue("support", customer=f"c{i}", session=f"s{i}")
            for i in range(50)
        )
    )

    served: list[str] = []

    async def answer(name: str, router: Router) -> None:
        for entry in await router.entries():
            if entry.state == EntryState.OFFERED and entry.offered_to == name:
                taken = await router.accept(name, entry.id)
                served.append(taken.customer)
                await router.finish(name, "support")

    for _ in range(200):
        if len(served) == 50:
            break
        await asyncio.gather(*(answer(name, router) for name, router in home.items()))
        await asyncio.gather(*(router.tick() for router in two_nodes))
    assert sorted(served) == sorted(f"c{i}" for i in range(50))
    assert len(set(served)) == 50
    assert await two_nodes[0].entries() == []
    # No customer was ever offered to two technicians, or twice to one.
    by_entry = Counter(entry for entry, _ in offered)
    assert set(by_entry.values()) == {1}
