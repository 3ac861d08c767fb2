"""Faults: a peer that never connects, a client that stops reading, a shutdown with
sessions open, and a recorder whose disk is full."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import resource
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import av
import pytest

from server.media import Peer
from tests.hostile.conftest import NodeFactory, live_session, next_of, open_customer
from tests.hostile.sdp_corpus import real_offer
from tests.peers import wait_for
from tests.test_crash_recovery import ADMIN_KEY, ServerProcess


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP port on loopback where nobody ever answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


async def test_peer_that_never_connects_is_freed_by_the_ice_timeout(
    make_node: NodeFactory,
    http: aiohttp.ClientSession,
    silent_udp: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    node = await make_node(ice_timeout_s=1.0)
    ws, boot = await open_customer(node, http)
    try:
        sdp = re.sub(
            r"(a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1) \d+",
            rf"\1 {silent_udp}",
            await real_offer(),
        )
        await ws.send_json({"type": "offer", "session": boot["session"], "sdp": sdp})
        await next_of(ws, "answer")
        session = node.node.desk.sessions[boot["session"]]
        assert session.summary()["media"]["customer"] == "connecting"
        await wait_for(
            lambda: session.summary()["media"]["customer"] == "none", 10, "freed"
        )
        await wait_for(lambda: Peer.open_count == 0, 10, "the peer closed")
        assert session.summary()["present"]["customer"]  # the socket stays
        assert f"peer {session.id}/customer: not connected after 1 s" in caplog.text
    finally:
        await ws.close()


def _frame(text: str) -> bytes:
    """One masked websocket text frame, as a client sends it."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def test_client_that_stops_reading_is_disconnected(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    node = await make_node(
        max_send_buffer_bytes=16 * 1024,
        ws_messages_per_s=1e6,
        ws_burst=10**6,
        address_messages_per_s=1e6,
        address_burst=10**6,
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", node.config.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    sockets = node.node.signalling.sockets
    await wait_for(lambda: len(sockets) == 1, 5, "the socket")

    # Every bad message earns an error reply, and this client reads none of them.
    junk = _frame('{"v": 1, "type": "x", "pad": "' + "p" * 200 + '"}') * 100
    sent = 0
    try:
        while sockets and sent < 200_000:
            writer.write(junk)
            await writer.drain()
            sent += 100
    except ConnectionError:
        pass  # the server cut us off while we were still writing
    await wait_for(lambda: not sockets, 10, "the server to drop the socket")
    assert "over 16384 bytes unread; disconnecting it" in caplog.text
    writer.close()

    # Everyone else is served as before.
    async with aiohttp.ClientSession() as http, http.get(f"{node.base}/healthz") as r:
        assert r.status == 200


# Subprocess tests: a real node process, stopped with SIGTERM or given a full disk.


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data")
    yield process
    process.stop()


async def _links(base: str) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    urls = []
    async with aiohttp.ClientSession() as http:
        for body in (
            {"kind": "login", "name": "tech-1"},
            {"kind": "direct", "technician": "tech-1"},
        ):
            async with http.post(
                f"{base}/api/links", json=body, headers=headers
            ) as resp:
                assert resp.status == 201, await resp.text()
                urls.append(str((await resp.json())["url"]))
    return urls[0], urls[1]


@pytest.mark.slow
async def test_shutdown_ends_sessions_finalizes_recordings_and_says_going_away(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
) -> None:
    server.start()
    await server.ready()
    login, direct = await _links(server.base)
    customer, technician, session = await live_session(
        server.base, login, direct, http, tech_http
    )
    try:
        frames = technician.video.frames
        await wait_for(lambda: technician.video.frames > frames + 60, 15, "media")
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        ended = await customer.expect("ended", timeout_s=10)
        assert ended["reason"] == "server shutting down"
        await wait_for(lambda: customer.ws is not None and customer.ws.closed, 10)
        assert customer.ws is not None and customer.ws.close_code == 1001
        assert technician.ws is not None
        await wait_for(lambda: technician.ws is not None and technician.ws.closed, 10)
        assert technician.ws.close_code == 1001
        assert server.proc.wait(timeout=10) == 0
        stopped_in = time.monotonic() - started
    finally:
        await customer.close()
        await technician.close()

    assert stopped_in < 10
    directory = server.data_dir / "recordings" / session
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["finalized"] and not meta["recovered"]
    assert meta["reason"] == "server shutting down"
    with av.open(str(directory / "video.mp4")) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded >= 30


FULL_DISK_BYTES = 96 * 1024


def _full_disk() -> None:
    """In the server process: files may grow to FULL_DISK_BYTES, as on a tiny disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FULL_DISK_BYTES, hard))


@pytest.mark.slow
async def test_recorder_on_a_full_disk_fails_alone_and_staff_are_told(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
) -> None:
    server.start(preexec_fn=_full_disk)
    await server.ready()
    login, direct = await _links(server.base)
    customer, technician, session = await live_session(
        server.base, login, direct, http, tech_http
    )
    try:

        def told() -> dict[str, object] | None:
            return next(
                (
                    m
                    for m in technician.messages
                    if m["type"] == "session" and m.get("recording_error")
                ),
                None,
            )

        await wait_for(lambda: told() is not None, 30, "the recording error")
        error = told()
        assert error is not None and "File too large" in str(error["recording_error"])
        assert error["state"] == "live"

        # The call goes on: video still reaches the technician.
        frames = technician.video.frames
        await wait_for(lambda: technician.video.frames > frames + 30, 10, "media")
        await customer.send(type="end", session=session)
        await customer.expect("ended")
    finally:
        await customer.close()
        await technician.close()

    log = server.log.read_text()
    assert log.count("recording failed") == 1, log
    assert log.count(f"session {session}: closed") == 1
