"""The Store protocol, the same tests for the in-memory store and for real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import build_node
from server.errors import StoreUnavailable
from server.store import MemoryStore, Store
from server.store.redis import RedisStore
from tests.conftest import StoreMaker, node_config
from tests.peers import wait_for
from tests.redis_server import RedisServer


@pytest.fixture
async def store(make_store: StoreMaker) -> Store:
    made = make_store(time.monotonic)
    # Open the connections first, so that the concurrent calls below really
    # overlap (otherwise the first finishes while the others still connect).
    await asyncio.gather(*(made.get("warm-up") for _ in range(20)))
    return made


async def test_claim_is_won_once_and_then_reports_the_holder(store: Store) -> None:
    results = await asyncio.gather(
        *(store.claim("slot", f"owner-{i}", 30) for i in range(20))
    )
    assert len(set(results)) == 1
    assert await store.get("slot") == results[0]


async def test_values_expire(store: Store) -> None:
    await store.put("short", "v", 0.05)
    assert await store.claim("claimed", "a", 0.05) == "a"
    assert await store.get("short") == "v"
    await asyncio.sleep(0.1)  # let the two keys' 50 ms expiry pass
    assert await store.get("short") is None
    assert await store.claim("claimed", "b", 30) == "b"


async def test_delete_frees_a_claim(store: Store) -> None:
    await store.claim("k", "a", 30)
    await store.delete("k")
    assert await store.get("k") is None
    assert await store.claim("k", "b", 30) == "b"


async def test_hash_fields_and_compare_and_set(store: Store) -> None:
    await store.hset("h", "one", "1")
    await store.hset("h", "two", "2")
    assert await store.hget("h", "one") == "1"
    assert await store.hgetall("h") == {"one": "1", "two": "2"}
    assert not await store.hswap("h", "one", "stale", "x")
    assert await store.hswap("h", "one", "1", "x")
    assert await store.hget("h", "one") == "x"
    assert not await store.hswap("h", "absent", "", "y")
    assert await store.hdel("h", "one")
    assert not await store.hdel("h", "one")
    assert await store.hgetall("missing") == {}


async def test_concurrent_swaps_have_one_winner(store: Store) -> None:
    await store.hset("h", "f", "start")
    won = await asyncio.gather(
        *(store.hswap("h", "f", "start", f"v{i}") for i in range(20))
    )
    assert sum(won) == 1


async def test_lists_keep_only_the_newest(store: Store) -> None:
    for i in range(7):
        await store.append("log", str(i), keep=5)
    assert await store.items("log") == ["2", "3", "4", "5", "6"]
    assert await store.items("nothing") == []


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own, to stop and start."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_outage_gives_a_typed_error_and_the_store_comes_back(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(own_redis.url, prefix="outage:")
    came_back: list[bool] = []
    store.up_listeners.append(lambda: came_back.append(True))
    try:
        await store.put("k", "v", 30)
        own_redis.stop()
        for _ in range(5):
            with pytest.raises(StoreUnavailable) as caught:
                await store.get("k")
            assert caught.value.code == "unavailable"
        assert not store.available
        own_redis.start()
        await wait_for(lambda: store.available, 10, "redis back")
        assert came_back == [True]
        # A restarted Redis without persistence is empty, and works.
        assert await store.get("k") is None
        assert await store.claim("k", "a", 30) == "a"
    finally:
        await store.close()
    outage_lines = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage_lines) == 1
    assert any("back after" in r.getMessage() for r in caplog.records)


def test_without_redis_a_node_keeps_its_state_in_memory(tmp_path: Path) -> None:
    node = build_node(node_config(tmp_path / "data"))
    assert isinstance(node.store, MemoryStore)
    assert node.cluster is None
