"""Signalling load: idle websockets one node holds, queue joins per second, and
routing operations per second, with the in-memory store and with Redis.

The node runs as a server process (so its memory is its own); the clients run here.
For each store:
- idle: N websockets opened and held (no join), the node's resident memory before
  and after, so memory per connection;
- joins: customers open a support link and join its queue over a websocket until
  they get their place, then leave; W at a time, J in all;
- queue ops: in this process, a Router over the same kind of store: enqueue, read
  the place, leave, as fast as one task can; and the naive way, where every place
  re-reads the queue's whole event log for its wait estimate.

Run from the repository root (redis-server from `scripts/install --test`):

    .venv/bin/python -m bench.signalling --idle 2000 --joins 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from server.links import Kind, LinkSigner
from server.routing import QueueSettings, Router
from server.store import MemoryStore, Store
from server.store.redis import RedisStore
from tests.conftest import free_port
from tests.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Node:
    def __init__(self, data_dir: Path, redis_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "run.py", "--port", str(self.port)]
        args += ["--data-dir", str(data_dir), "--no-demo", "--log-level", "WARNING"]
        if redis_url:
            args += ["--redis", redis_url]
        env = {**os.environ, "TAPLINE_SECRET": SECRET, "TAPLINE_MAX_SESSIONS": "5000"}
        self.log = data_dir.parent / f"{data_dir.name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async def ready(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{self.base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)  # bounded poll while the process starts
        raise RuntimeError("node did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


async def idle_sockets(node: Node, count: int) -> dict[str, float]:
    """Open `count` websockets and hold them; the node's memory per socket."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.sleep(0.5)  # let the node settle after start
        before = _rss_kib(node.proc.pid)
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        readers: list[asyncio.Task[None]] = []
        started = time.monotonic()
        for start in range(0, count, 100):
            batch = await asyncio.gather(
                *(
                    http.ws_connect(f"{node.base}/ws")
                    for _ in range(min(100, count - start))
                )
            )
            # Read every socket, as a browser does, so that pings get their pongs.
            readers += [asyncio.create_task(_drain(ws)) for ws in batch]
            sockets += batch
        opened_s = time.monotonic() - started
        await asyncio.sleep(1.0)  # let allocations settle before reading memory
        after = _rss_kib(node.proc.pid)
        async with http.get(f"{node.base}/metrics") as resp:
            text = await resp.text()
        held = next(
            float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("tapline_websockets ")
        )
        await asyncio.gather(*(ws.close() for ws in sockets))
        await asyncio.gather(*readers)
    return {
        "held": held,
        "open_per_s": count / opened_s,
        "rss_before_mib": before / 1024,
        "kib_per_socket": (after - before) / count,
    }


async def joins(node: Node, total: int, workers: int) -> dict[str, float]:
    """Customers join the queue (link, websocket, join, place) and leave."""
    signer = LinkSigner(SECRET, MemoryStore())
    latencies: list[float] = []
    remaining = list(range(total))

    async def worker() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            while remaining:
                remaining.pop()
                token, _ = signer.sign(Kind.SUPPORT, 600, queue="support")
                t0 = time.monotonic()
                headers = {"Accept": "application/json"}
                async with http.get(f"{node.base}/j/{token}", headers=headers) as r:
                    boot = await r.json()
                    assert r.status == 200, boot
                ws = await http.ws_connect(f"{node.base}/ws")
                await ws.send_str(json.dumps({"v": 1, "type": "join", **boot}))
                async for msg in ws:
                    if json.loads(msg.data)["type"] == "queue":
                        break
                latencies.append(time.monotonic() - t0)
                end = {"v": 1, "type": "end", "session": boot["session"]}
                await ws.send_str(json.dumps(end))
                await ws.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "joins_per_s": total / elapsed,
        "join_p50_ms": latencies[len(latencies) // 2] * 1000,
        "join_p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


async def reads(store: Store, count: int) -> float:
    """Single-key reads per second, one task: the store's round trip."""
    started = time.monotonic()
    for _ in range(count):
        await store.get("bench-read")
    return count / (time.monotonic() - started)


class EveryTimeRouter(Router):
    """The naive way: every place re-reads the whole event log for its estimate."""

    async def _wait_per_place(self, queue: str) -> float | None:
        self._aht.clear()
        return await super()._wait_per_place(queue)


async def queue_ops(store: Store, rounds: int, naive: bool = False) -> float:
    """Router operations per second over `store`: enqueue, place, leave."""
    kind = EveryTimeRouter if naive else Router
    router = kind(store, [QueueSettings("support")])
    started = time.monotonic()
    for i in range(rounds):
        entry = await router.enqueue("support", customer=f"c{i}", session=f"s{i}")
        await router.position(entry.id)
        await router.leave(entry.id)
    return 3 * rounds / (time.monotonic() - started)


async def run(idle: int, total: int, workers: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        redis.start()
        rows: dict[str, dict[str, Any]] = {}
        try:
            for label, url in (("memory", ""), ("redis", redis.url)):
                node = Node(Path(tmp) / label, url)
                try:
                    async with aiohttp.ClientSession() as http:
                        await node.ready(http)
                    row: dict[str, Any] = await idle_sockets(node, idle)
                    row |= await joins(node, total, workers)
                except Exception:
                    print(node.log.read_text()[-4000:], file=sys.stderr)
                    raise
                finally:
                    node.stop()
                store: Store = (
                    RedisStore(url, prefix=f"bench-{secrets.token_hex(3)}:")
                    if url
                    else MemoryStore()
                )
                row["reads_per_s"] = await reads(store, 20 * rounds)
                row["queue_ops_per_s"] = await queue_ops(store, rounds)
                await store.close()
                store = (
                    RedisStore(url, prefix=f"bench-{secrets.token_hex(3)}:")
                    if url
                    else MemoryStore()
                )
                row["naive_ops_per_s"] = await queue_ops(store, rounds, naive=True)
                await store.close()
                rows[label] = row
                print(f"{label}: done", file=sys.stderr)
        finally:
            redis.stop()
    print_table(rows, idle, total, workers)


def print_table(
    rows: dict[str, dict[str, Any]], idle: int, total: int, workers: int
) -> None:
    print(f"\n{idle} idle websockets; {total} queue joins, {workers} at a time\n")
    print("| figure | memory store | Redis | Redis / memory |")
    print("| --- | ---: | ---: | ---: |")
    names = [
        ("idle websockets held", "held", "{:.0f}"),
        ("websockets opened per second", "open_per_s", "{:.0f}"),
        ("node memory before, MiB", "rss_before_mib", "{:.0f}"),
        ("memory per idle websocket, KiB", "kib_per_socket", "{:.1f}"),
        ("queue joins per second (link + join + leave)", "joins_per_s", "{:.0f}"),
        ("join p50, ms", "join_p50_ms", "{:.1f}"),
        ("join p95, ms", "join_p95_ms", "{:.1f}"),
        ("store reads per second (one task)", "reads_per_s", "{:.0f}"),
        ("routing ops per second (one task)", "queue_ops_per_s", "{:.0f}"),
        ("same, event log re-read per place (naive)", "naive_ops_per_s", "{:.0f}"),
    ]
    memory, redis = rows["memory"], rows["redis"]
    for title, key, fmt in names:
        ratio = redis[key] / memory[key] if memory[key] else float("nan")
        print(
            f"| {title} | {fmt.format(memory[key])} | {fmt.format(redis[key])} "
            f"| {ratio:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=2000, help="idle websockets")
    parser.add_argument("--joins", type=int, default=400, help="queue joins")
    parser.add_argument("--workers", type=int, default=20, help="joins at a time")
    parser.add_argument("--rounds", type=int, default=500, help="routing rounds")
    args = parser.parse_args()
    asyncio.run(run(args.idle, args.joins, args.workers, args.rounds))


if __name__ == "__main__":
    main()
