"""200 customers connect media and vanish without a word: nothing stays behind.

Each cycle opens a link, joins, connects a real aiortc peer (camera and tone
flowing), then drops its TCP connection with no websocket close. The node must
end up where it started: no peer connections, sessions, sockets, tasks, threads
or file descriptors left, and memory growth bounded. Clients run in this process
too, so they are closed as well; the counts cover both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import threading
from dataclasses import dataclass

import aiohttp
import pytest

from server.media import Peer
from tests.conftest import RunningNode
from tests.hostile.conftest import NodeFactory
from tests.peers import Customer, wait_for

pytestmark = pytest.mark.slow

CYCLES = 200
AT_ONCE = 4
WARM_UP_CYCLES = 40
RSS_GROWTH_LIMIT_MB = 150
"""From the warmed-up baseline to the end: glibc keeps what concurrent peers' codecs
and threads once used (measured: it levels off near +150 MB by ~80 cycles)."""
RSS_LATE_GROWTH_LIMIT_MB = 40
"""Over the second hundred cycles, where a leak of 0.4 MB a cycle would show."""


@dataclass(frozen=True)
class Counts:
    peers: int
    sessions: int
    sockets: int
    tasks: int
    threads: int
    fds: int
    rss_mb: float


def _rss_mb() -> float:
    # Hand freed heap back to the OS first, so RSS shows what is still held
    # rather than how glibc's arenas happen to be fragmented.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _threads() -> int:
    """Threads other than the loop's default executor (a bounded, idle pool)."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_"))


def _counts(node: RunningNode) -> Counts:
    gc.collect()
    return Counts(
        peers=Peer.open_count,
        sessions=len(node.node.desk.sessions),
        sockets=len(node.node.signalling.sockets),
        tasks=len(asyncio.all_tasks()),
        threads=_threads(),
        fds=len(os.listdir("/proc/self/fd")),
        rss_mb=_rss_mb(),
    )


async def _vanish_once(node: RunningNode) -> None:
    """One customer: connect media, then drop the connection abruptly."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    customer = Customer(node.base, http)
    try:
        session = node.node.desk.sessions[await customer.join(node.direct_link())]
        await wait_for(
            lambda: session.summary()["media"]["customer"] == "connected", 15, "media"
        )
        await http.close()  # TCP closed, no websocket close frame
        await wait_for(
            lambda: not session.summary()["present"]["customer"], 10, "noticed"
        )
    finally:
        await http.close()
        await customer.close()


async def _settled(node: RunningNode, baseline: Counts) -> Counts:
    """Wait until the node holds nothing, then count."""
    await wait_for(
        lambda: (
            Peer.open_count == 0
            and not node.node.desk.sessions
            and not node.node.signalling.sockets
        ),
        30,
        "sessions to end",
    )
    # Closed peers and ended sessions finish their last tasks and threads.
    try:
        await wait_for(
            lambda: (
                len(asyncio.all_tasks()) <= baseline.tasks
                and _threads() <= baseline.threads
            ),
            30,
            "tasks and threads to finish",
        )
    except AssertionError:
        left = [t.get_coro() for t in asyncio.all_tasks()]
        threads = [t.name for t in threading.enumerate()]
        raise AssertionError(
            f"{baseline} -> {_counts(node)}: tasks {left}, threads {threads}"
        ) from None
    return _counts(node)


async def test_two_hundred_abrupt_customers_leave_nothing_behind(
    make_node: NodeFactory,
) -> None:
    node = await make_node(rejoin_grace_s=0.2)
    for _ in range(WARM_UP_CYCLES // AT_ONCE):  # lazy imports, codec tables, pools
        await asyncio.gather(*(_vanish_once(node) for _ in range(AT_ONCE)))
    await wait_for(lambda: not node.node.desk.sessions, 30, "warm-up sessions")
    baseline = _counts(node)

    middle = baseline
    for batch in range(CYCLES // AT_ONCE):
        await asyncio.gather(*(_vanish_once(node) for _ in range(AT_ONCE)))
        if (batch + 1) * AT_ONCE == CYCLES // 2:
            middle = _counts(node)
    after = await _settled(node, baseline)

    assert (after.peers, after.sessions, after.sockets) == (0, 0, 0)
    assert after.tasks <= baseline.tasks, (baseline, after)
    assert after.threads <= baseline.threads, (baseline, after)
    assert after.fds <= baseline.fds, (baseline, after)
    assert after.rss_mb - baseline.rss_mb < RSS_GROWTH_LIMIT_MB, (baseline, after)
    assert after.rss_mb - middle.rss_mb < RSS_LATE_GROWTH_LIMIT_MB, (middle, after)
    print(
        f"\nleak test, {CYCLES} cycles: RSS {baseline.rss_mb:.0f} -> "
        f"{middle.rss_mb:.0f} (half way) -> {after.rss_mb:.0f} MB; "
        f"fds {baseline.fds} -> {after.fds}; tasks {baseline.tasks} -> {after.tasks}; "
        f"threads {baseline.threads} -> {after.threads}"
    )
