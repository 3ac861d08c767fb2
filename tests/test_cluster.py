"""Two Tapline nodes (server processes) on one real Redis, on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.peers import Customer, Technician, wait_for
from tests.redis_server import RedisServer
from tests.test_crash_recovery import ADMIN_KEY, ServerProcess

pytestmark = pytest.mark.slow

NODE_TIMEOUT_S = 3.0
"""Heartbeat timeout of the test nodes (the default is 10 s), seconds."""


class Nodes:
    def __init__(self, tmp_path: Path, redis: RedisServer) -> None:
        env = {
            "TAPLINE_NODE_TIMEOUT_S": str(NODE_TIMEOUT_S),
            "TAPLINE_WRAP_UP_S": "1",
            "TAPLINE_REJOIN_GRACE_S": "2",
        }
        args = ["--redis", redis.url]
        self.a = ServerProcess(tmp_path / "a" / "data", args, env)
        self.b = ServerProcess(tmp_path / "b" / "data", args, env)
        for node in (self.a, self.b):
            node.data_dir.parent.mkdir(parents=True)

    async def start(self) -> None:
        for node in (self.a, self.b):
            node.start()
        await asyncio.gather(self.a.ready(), self.b.ready())
        await wait_until(self._both_see_two, "two nodes")

    async def _both_see_two(self) -> bool:
        return await _sees(self.a, 2) and await _sees(self.b, 2)

    def stop(self) -> None:
        for node in (self.a, self.b):
            node.stop()


@pytest.fixture
async def nodes(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Nodes]:
    redis_server.flush()  # a fresh, empty Redis per test
    both = Nodes(tmp_path, redis_server)
    try:
        await both.start()
        yield both
    finally:
        both.stop()


async def health(node: ServerProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{node.base}/healthz") as r:
        found: dict[str, Any] = await r.json()
        return found


async def _sees(node: ServerProcess, count: int) -> bool:
    cluster = (await health(node)).get("cluster", {})
    return len(cluster.get("nodes", {})) == count


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15.0
) -> None:
    """Poll an async condition (state, not time) until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def link(node: ServerProcess, **body: Any) -> str:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.base}/api/links", json=body, headers=headers) as resp,
    ):
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["url"])


async def console(
    node: ServerProcess, http: aiohttp.ClientSession, name: str, **scope: Any
) -> Technician:
    technician = Technician(node.base, http)
    await technician.sign_in(await link(node, kind="login", name=name, **scope))
    await technician.join()
    await technician.expect("presence")
    return technician


async def queued(
    node: ServerProcess, http: aiohttp.ClientSession, **scope: Any
) -> Customer:
    customer = Customer(node.base, http)
    await customer.open_link(await link(node, kind="support", queue="support", **scope))
    await customer.connect_ws()
    await customer.send(type="join", token=customer.boot["token"])
    await customer.expect("queue")
    return customer


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_customer_on_one_node_and_technician_on_the_other_share_media(
    nodes: Nodes,
) -> None:
    async with jar() as tech_http, jar() as http:
        technician = await console(nodes.b, tech_http, "tech-b")
        customer = await queued(nodes.a, http)
        try:
            assert customer.base == nodes.a.base  # A was the least loaded
            session = customer.boot["session"]
            offer = await technician.expect("offered", session=session)
            await technician.send(type="accept", entry=offer["entry"])
            await technician.expect("session", session=session, state="waiting")

            customer.pc.addTransceiver(customer.camera, direction="sendonly")
            customer.pc.addTransceiver("audio", direction="recvonly")
            await customer.negotiate(session, width=640, height=480)
            await technician.take(session)  # relayed by B to A over the bus
            await customer.expect("session", state="live", timeout_s=15)
            await technician.expect("session", session=session, state="live")
            await wait_for(lambda: technician.video.colours["red"] >= 3, 15, "frames")
            # A technician tool (a snapshot on the server) reaches A from B too.
            await technician.send(type="snapshot", session=session, ref="snap")
            snap = await technician.expect("ok", ref="snap")
            assert snap["file"]
            assert customer.audio_frames > 0 or technician.audio_frames > 0

            # Transfer and disposition from B reach the session on A too.
            seen_tech, seen_customer = len(technician.messages), len(customer.messages)
            await technician.send(
                type="transfer", session=session, queue="support", ref="t"
            )
            await technician.expect("ok", ref="t")
            await technician.expect("ended", reason="transferred to support")
            await customer.expect("session", state="queued")
            assert customer.pc.connectionState == "connected"
            # Only what came after the transfer counts from here on.
            del technician.messages[:seen_tech], customer.messages[:seen_customer]
            offer = await technician.expect("offered", session=session, timeout_s=15)
            await technician.send(type="accept", entry=offer["entry"])
            await customer.expect("session", state="waiting")

            await technician.send(type="end", session=session, reason="fixed")
            await customer.expect("ended", session=session)
            await wait_until(lambda: _sessions_are(nodes.a, 0), "session closed")
            await technician.send(
                type="disposition", session=session, code="resolved", ref="d"
            )
            await technician.expect("ok", ref="d")
        finally:
            await customer.close()
            await technician.close()
    timeline = nodes.a.data_dir / "recordings" / session / "timeline.jsonl"
    kinds = [json.loads(line)["kind"] for line in timeline.read_text().splitlines()]
    assert kinds.index("transfer") < kinds.index("end") < kinds.index("disposition")


async def test_console_hears_that_a_direct_session_ended_with_its_node(
    nodes: Nodes,
) -> None:
    """A direct link's technician is not busy in routing, so the reaper does not
    know them: the console's own node tells it, instead of 'trying again' forever."""
    async with jar() as tech_http, jar() as http:
        technician = await console(nodes.b, tech_http, "tech-b")
        customer = Customer(nodes.a.base, http)
        try:
            url = await link(nodes.a, kind="direct", technician="tech-b")
            session = await customer.join(url)
            assert customer.base == nodes.a.base  # A was the least loaded
            await technician.expect("session", session=session)
            await technician.take(session)  # relayed by B to A over the bus
            await technician.expect("session", session=session, state="live")

            nodes.a.kill(signal.SIGKILL)
            ended = await technician.expect(
                "ended", session=session, timeout_s=4 * NODE_TIMEOUT_S
            )
            assert "stopped" in ended["reason"]
        finally:
            await customer.close()
            await technician.close()


async def test_queue_order_holds_across_nodes(nodes: Nodes) -> None:
    async with jar() as h1, jar() as h2, jar() as h3, jar() as tech_http:
        first = await queued(nodes.a, h1)
        second = await queued(nodes.b, h2)
        urgent = await queued(nodes.a, h3, priority=5)
        customers = [first, second, urgent]
        technician: Technician | None = None
        try:
            await urgent.expect("queue", position=1)
            await first.expect("queue", position=2)
            await second.expect("queue", position=3)
            # A customer whose session lives on A cannot join it on B.
            elsewhere = Customer(nodes.b.base, h1)
            customers.append(elsewhere)
            home, other = (
                (nodes.a, nodes.b) if first.base == nodes.a.base else (nodes.b, nodes.a)
            )
            elsewhere.base = other.base
            await elsewhere.connect_ws()
            await elsewhere.send(type="join", token=first.boot["token"], ref="j")
            assert (await elsewhere.expect("error", ref="j"))["code"] == "moved"
            assert home.base == first.base
            technician = await console(nodes.b, tech_http, "tech-b")
            offer = await technician.expect("offered")
            assert offer["session"] == urgent.boot["session"]
            await technician.send(type="accept", entry=offer["entry"])
            await first.expect("queue", position=1)
            await second.expect("queue", position=2)
        finally:
            for customer in customers:
                await customer.close()
            if technician is not None:
                await technician.close()


async def test_dead_node_loses_no_one(nodes: Nodes) -> None:
    async with jar() as http, jar() as http_b, jar() as http_a, jar() as idle:
        # Load A a little, so that the customer's session is placed on B.
        sockets = [await idle.ws_connect(f"{nodes.a.base}/ws") for _ in range(3)]
        tech_b = await console(nodes.b, http_b, "tech-b", skills={"lang:fr": 3})
        tech_a = await console(nodes.a, http_a, "tech-a", skills={"lang:en": 3})
        await tech_a.send(type="status", status="away", ref="away")
        await tech_a.expect("ok", ref="away")
        await wait_until(lambda: _load_seen_by(nodes.b, nodes.a, 4), "A's load")

        # A presenter opens a demo room on B; its link works from A too.
        presenter = Technician(nodes.b.base, http_b)
        await presenter.sign_in(
            await link(nodes.b, kind="login", name="p", role="presenter")
        )
        await presenter.connect_ws()
        await presenter.send(type="studio", title="Kettles", ref="s")
        room_link = (await presenter.expect("welcome", ref="s"))["viewer_url"]
        room_link_on_a = room_link.replace(nodes.b.base, nodes.a.base)
        await wait_until(lambda: _room_seen_by(nodes.a, nodes.b), "room in A's view")
        status, boot = await _status(room_link_on_a)
        assert status == 200, boot
        assert boot["room"] and boot["token"]

        url = await link(
            nodes.b, kind="support", queue="support", skills={"lang:en": 1}
        )
        customer = Customer(nodes.b.base, http)
        again = Customer(nodes.a.base, http)
        try:
            await customer.open_link(url)
            assert customer.base == nodes.b.base
            await customer.connect_ws()
            await customer.send(type="join", token=customer.boot["token"])
            await customer.expect("queue", position=1)
            session = customer.boot["session"]
            assert await _technicians(nodes.a) == {
                "tech-a": "away",
                "tech-b": "available",
            }

            killed_at = time.monotonic()
            assert nodes.b.kill(signal.SIGKILL) == -signal.SIGKILL
            await wait_until(
                lambda: _technicians_are(nodes.a, {"tech-a": "away"}),
                "tech-b offline",
                timeout_s=NODE_TIMEOUT_S * 3,
            )
            assert time.monotonic() - killed_at < NODE_TIMEOUT_S * 3

            status, refused = await _status(room_link_on_a)
            assert (status, refused["code"]) == (410, "ended")
            assert "its server stopped" in refused["reason"]

            # The customer's page comes back through the load balancer, to A.
            await again.open_link(url.replace(nodes.b.base, nodes.a.base))
            assert again.base == nodes.a.base
            assert again.boot["session"] == session
            await again.connect_ws()
            await again.send(type="join", token=again.boot["token"])
            await again.expect("queue", position=1)
            await tech_a.send(type="status", status="available")
            offer = await tech_a.expect("offered", session=session)
            await tech_a.send(type="accept", entry=offer["entry"])
            await tech_a.expect("session", session=session, state="waiting")
            await again.expect("session", state="waiting")
        finally:
            for socket in sockets:
                await socket.close()
            for client in (customer, again, tech_a, tech_b, presenter):
                await client.close()


async def _sessions_are(node: ServerProcess, count: int) -> bool:
    return bool((await health(node))["sessions"] == count)


async def _technicians(node: ServerProcess) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{node.base}/api/routing", headers=headers) as resp,
    ):
        body = await resp.json()
    return {t["name"]: t["status"] for t in body["technicians"]}


async def _technicians_are(node: ServerProcess, expected: dict[str, str]) -> bool:
    return await _technicians(node) == expected


async def _room_seen_by(viewer: ServerProcess, node: ServerProcess) -> bool:
    seen = (await health(viewer))["cluster"]["nodes"]
    mine = (await health(node))["cluster"]["node"]
    return bool(mine in seen and seen[mine]["rooms"])


async def _load_seen_by(viewer: ServerProcess, node: ServerProcess, load: int) -> bool:
    seen = (await health(viewer))["cluster"]["nodes"]
    mine = (await health(node))["cluster"]["node"]
    return bool(mine in seen and seen[mine]["load"] >= load)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own, to stop and start."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def _status(url: str) -> tuple[int, dict[str, Any]]:
    headers = {"Accept": "application/json"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        body: dict[str, Any] = await r.json()
        return r.status, body


async def test_redis_outage_keeps_sessions_and_refuses_new_joins_clearly(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    node = ServerProcess(tmp_path / "data", ["--redis", own_redis.url])
    node.data_dir.parent.mkdir(parents=True, exist_ok=True)
    node.start()
    try:
        await node.ready()
        async with jar() as http, jar() as tech_http, jar() as queue_http:
            technician = await console(node, tech_http, "tech-1")
            await technician.send(type="status", status="away", ref="away")
            await technician.expect("ok", ref="away")
            in_line = await queued(node, queue_http)
            customer = Customer(node.base, http, colour="green")
            waiting = Customer(node.base, http)
            try:
                session = await customer.join(
                    await link(node, kind="direct", technician="tech-1")
                )
                await technician.expect("session", session=session)
                await technician.take(session)
                await customer.expect("session", state="live", timeout_s=15)
                # Someone opened a link before the outage and joins during it.
                await waiting.open_link(
                    await link(node, kind="direct", technician="tech-1")
                )
                later = await link(node, kind="direct", technician="tech-1")

                own_redis.stop()
                status, body = await _status(later)
                assert (status, body["code"]) == (503, "unavailable")
                assert (await health(node))["status"] == "degraded"
                await waiting.connect_ws()
                await waiting.send(type="join", token=waiting.boot["token"], ref="j")
                refused = await waiting.expect("error", ref="j")
                assert refused["code"] == "unavailable"
                assert refused["reason"]

                # The live session keeps its media through the outage.
                before = technician.video.frames
                await wait_for(
                    lambda: technician.video.frames >= before + 30, 10, "frames"
                )
                assert customer.last("ended") is None

                own_redis.start()
                await wait_until(lambda: _opens(later), "joins work again", 15)
                assert (await health(node))["status"] == "ok"
                await wait_for(
                    lambda: technician.video.frames >= before + 60, 10, "frames"
                )
                assert customer.last("ended") is None
                # The restarted Redis was empty: the node put back its technician's
                # presence and its queued customer's place.
                await wait_until(
                    lambda: _technicians_are(node, {"tech-1": "away"}), "presence"
                )
                await technician.send(type="status", status="available")
                offer = await technician.expect("offered")
                assert offer["session"] == in_line.boot["session"]
            finally:
                for client in (customer, waiting, technician, in_line):
                    await client.close()
    finally:
        node.stop()
    log = node.log.read_text()
    assert log.count("unreachable") == 1, log
    assert log.count("back after") == 1, log
    assert "Traceback" not in log, log


async def _opens(url: str) -> bool:
    status, _ = await _status(url)
    return status == 200


async def test_a_node_with_another_secret_refuses_to_join_in_words(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Each node makes its own secret in its own data dir unless told otherwise;
    links and sign-ins of one would be 'not valid' on the other, so the second
    node stops at start-up and says what to do."""
    redis_server.flush()
    args = ["--redis", redis_server.url]
    first = ServerProcess(tmp_path / "a" / "data", args)
    second = ServerProcess(
        tmp_path / "b" / "data", args, {"TAPLINE_SECRET": "another-secret-98765"}
    )
    for node in (first, second):
        node.data_dir.parent.mkdir(parents=True)
    try:
        first.start()
        await first.ready()
        second.start()
        assert second.proc is not None
        assert second.proc.wait(timeout=20) == 2
        said = second.log.read_text()
        assert "same TAPLINE_SECRET" in said, said
        assert await _sees(first, 1)
    finally:
        first.stop()
        second.stop()
