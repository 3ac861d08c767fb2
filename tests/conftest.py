"""Fixtures: a real Tapline node on loopback with its own data dir."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.accesslog import RedactingAccessLogger
from server.app import NODE, Node, create_app
from server.config import Config
from server.links import Kind
from server.media import announce_host_addresses
from server.store import MemoryStore, Store
from server.store.redis import RedisStore
from tests.redis_server import RedisServer

TEST_SECRET = "test-secret-0123456789abcdef"

# Test clients offer loopback only, like the server under test (FACTS.md: aioice
# leaves 127.0.0.1 out by itself, and inside a network namespace there is nothing else).
announce_host_addresses(["127.0.0.1"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_config(data_dir: Path, **changes: object) -> Config:
    base = Config(
        host="127.0.0.1",
        port=free_port(),
        data_dir=data_dir,
        ice_host="127.0.0.1",
        secret=TEST_SECRET,
        admin_key="test-admin-key",
        demo=False,
        rejoin_grace_s=1.0,
        heartbeat_s=2.0,
    )
    return base.replace(**changes)


@dataclass
class RunningNode:
    node: Node
    base: str
    runner: web.AppRunner

    @property
    def config(self) -> Config:
        return self.node.config

    def direct_link(self, technician: str = "tech-1", ttl_s: float = 3600) -> str:
        token, _ = self.node.signer.sign(Kind.DIRECT, ttl_s, technician=technician)
        return f"{self.base}/j/{token}"

    def login_link(
        self, name: str = "tech-1", role: str = "technician", **scope: Any
    ) -> str:
        if not scope:
            return self.node.login_url(name, role)
        token, _ = self.node.signer.sign(Kind.LOGIN, 600, name=name, role=role, **scope)
        return f"{self.base}/j/{token}"

    def support_link(self, queue: str = "support", **scope: Any) -> str:
        token, _ = self.node.signer.sign(Kind.SUPPORT, 3600, queue=queue, **scope)
        return f"{self.base}/j/{token}"

    async def metric(self, name: str) -> float:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.base}/metrics") as r,
        ):
            for line in (await r.text()).splitlines():
                if line.startswith(f"tapline_{name} "):
                    return float(line.split()[1])
        raise AssertionError(f"metric {name} missing")


async def start_node(config: Config) -> RunningNode:
    app = create_app(config)
    runner = web.AppRunner(
        app, shutdown_timeout=2.0, access_log_class=RedactingAccessLogger
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    return RunningNode(app[NODE], config.origin, runner)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await start_node(node_config(tmp_path / "data"))
    yield running
    await running.runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


@pytest.fixture
async def tech_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A second cookie jar, for the technician's side."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole run; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


StoreMaker = Callable[[Callable[[], float]], Store]


@pytest.fixture(params=["memory", "redis"])
async def make_store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[StoreMaker]:
    """Makes Stores of one kind: in memory (on the given clock) or on real Redis
    (its own clock; each store under a fresh prefix)."""
    made: list[RedisStore] = []

    def make(clock: Callable[[], float]) -> Store:
        if request.param == "memory":
            return MemoryStore(clock)
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisStore(server.url, prefix=f"test-{secrets.token_hex(4)}:")
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()
