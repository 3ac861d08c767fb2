"""TURN: short-lived credentials (TURN REST API scheme) for pages and server peers,
and a relay-only client reaching the server through a real coturn over TCP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from server.config import Config
from server.media import rtc_configuration
from server.turn import ice_servers, turn_credential
from tests.conftest import free_port
from tests.hostile.conftest import NodeFactory
from tests.peers import Customer, Technician, wait_for

TURN_SECRET = "turn-shared-secret-for-tests"


def test_credential_follows_the_turn_rest_scheme() -> None:
    cred = turn_credential("north-wind", "c-1a2b3c", 3600, now=1_800_000_000)
    assert cred.username == "1800003600:c-1a2b3c"
    assert cred.expires_at == 1_800_003_600
    digest = hmac.new(b"north-wind", b"1800003600:c-1a2b3c", hashlib.sha1).digest()
    assert cred.credential == base64.b64encode(digest).decode()
    # the same as: printf %s 1800003600:c-1a2b3c |
    #   openssl dgst -sha1 -hmac north-wind -binary | base64
    assert cred.credential == "ttE+YnK7dVJC+++2yJHD9m0LZ5o="


def test_user_names_cannot_smuggle_separators() -> None:
    cred = turn_credential("s", "a:b c/../d", 60, now=0)
    assert cred.username == "60:a_b_c_.._d"


def test_no_turn_without_a_secret() -> None:
    config = Config(ice_servers=["stun:x.invalid:3478"], turn_urls=["turn:t:3478"])
    assert ice_servers(config, "u") == [{"urls": "stun:x.invalid:3478"}]


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--turn-url", "turn.example:3478"], {"TAPLINE_TURN_SECRET": "s"}, "not a"),
        (["--ice-server", "https://stun.example"], {}, "not a STUN/TURN URL"),
        (["--turn-url", "turn:turn.example:3478"], {}, "needs TAPLINE_TURN_SECRET"),
    ],
)
def test_bad_ice_settings_stop_the_server_in_words(
    tmp_path: Path, args: list[str], env: dict[str, str], said: str
) -> None:
    """A typo would make every RTCPeerConnection throw, and TURN without its secret
    is silently left out: both stop the server at start, saying what is wrong."""
    done = subprocess.run(
        [sys.executable, "run.py", "--data-dir", str(tmp_path), "--no-demo", *args],
        cwd=Path(__file__).parents[2],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stderr
    assert "Tapline serving" not in done.stdout


def test_server_peers_get_the_turn_servers_with_credentials() -> None:
    urls = [
        "turn:turn.example:3478?transport=udp",
        "turns:turn.example:5349?transport=tcp",
    ]
    config = Config(turn_urls=urls, turn_secret=TURN_SECRET)
    rtc = rtc_configuration(ice_servers(config, "server-s1"), relay_only=True)
    assert rtc.iceServers is not None
    (server,) = rtc.iceServers
    assert server.urls == urls and server.username is not None
    expiry, user = server.username.split(":")
    assert user == "server-s1" and int(expiry) > time.time() + 3600
    assert (
        server.credential
        == turn_credential(TURN_SECRET, "server-s1", 0, now=int(expiry)).credential
    )
    assert rtc.iceTransportPolicy.value == "relay"


def _boot(html: str) -> dict[str, object]:
    match = re.search(r'<script id="boot" type="application/json">(.*?)</script>', html)
    assert match, html[:200]
    boot: dict[str, object] = json.loads(match.group(1))
    return boot


async def test_pages_hand_out_fresh_credentials(
    make_node: NodeFactory,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
) -> None:
    urls = [
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
        "turns:turn.example:5349?transport=tcp",
    ]
    node = await make_node(turn_urls=urls, turn_secret=TURN_SECRET, turn_ttl_s=600)
    async with http.get(node.direct_link()) as resp:
        boot = _boot(await resp.text())
    async with tech_http.get(node.login_link("tech-1")) as resp:
        console = _boot(await resp.text())
    for page, user in ((boot, "c-"), (console, "tech-1")):
        servers = page["iceServers"]
        assert isinstance(servers, list) and len(servers) == 1
        entry = servers[0]
        assert entry["urls"] == urls
        expiry, name = entry["username"].split(":")
        assert name.startswith(user)
        assert time.time() + 590 <= int(expiry) <= time.time() + 601
        expected = turn_credential(TURN_SECRET, name, 0, now=int(expiry))
        assert entry["credential"] == expected.credential
    assert TURN_SECRET not in json.dumps([boot, console])


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    """A coturn server on loopback with the REST API secret; its port."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn is not installed (scripts/install --test installs it)")
    port = free_port()
    low = 40000 + port % 20000
    log = (tmp_path / "coturn.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            f"--min-port={low}",
            f"--max-port={low + 200}",
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=tapline.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            f"--userdb={tmp_path / 'turndb'}",
            f"--pidfile={tmp_path / 'turn.pid'}",
            "--log-file=stdout",
            "--simple-log",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)  # bounded poll while coturn starts
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


async def test_relay_only_client_connects_through_turn_over_tcp(
    coturn: int,  # first: it must outlive the node, whose peers release relays
    make_node: NodeFactory,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
) -> None:
    """A customer whose network blocks UDP: only TURN over TCP gets through."""
    node = await make_node(
        turn_urls=[
            f"turn:127.0.0.1:{coturn}?transport=udp",
            f"turn:127.0.0.1:{coturn}?transport=tcp",
        ],
        turn_secret=TURN_SECRET,
    )
    direct = node.direct_link()
    customer = Customer(node.base, http)
    technician = Technician(node.base, tech_http)
    try:
        boot = await customer.open_link(direct)
        (turn,) = boot["iceServers"]
        tcp_only = {**turn, "urls": [u for u in turn["urls"] if u.endswith("tcp")]}
        await customer.pc.close()
        customer.pc = RTCPeerConnection(rtc_configuration([tcp_only], relay_only=True))
        customer.pc.on("track", customer._on_track)

        await technician.sign_in(node.login_link("tech-1"))
        await technician.join()
        session = await customer.join(direct)
        offer = customer.pc.localDescription.sdp
        assert "typ relay" in offer and "typ host" not in offer
        # The server's own peer got a credential too and gathered a relay.
        answer = customer.last("answer")
        assert answer is not None and "typ relay" in answer["sdp"]
        await technician.expect("session", session=session)
        await technician.take(session)
        await customer.expect("session", state="live", timeout_s=20)
        await wait_for(lambda: technician.video.frames > 30, 15, "video via TURN")

        pair = _selected_pair(customer.pc)
        assert pair.local_candidate.type == "relay"
    finally:
        await customer.close()
        await technician.close()


def _selected_pair(pc: RTCPeerConnection) -> Any:
    """The nominated ICE pair of a client's connection (aioice internals)."""
    transport = pc.getTransceivers()[0].sender.transport.transport
    connection = transport._connection
    pairs = list(connection._nominated.values())
    assert pairs, "no nominated pair"
    return pairs[0]
