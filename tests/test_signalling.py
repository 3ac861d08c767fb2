"""Bad signalling gets a typed error on the socket; the session carries on."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from server.media import rtc_configuration
from tests.conftest import RunningNode


async def _joined_socket(
    node: RunningNode, http: aiohttp.ClientSession
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    async with http.get(
        node.direct_link("tech-1"), headers={"Accept": "application/json"}
    ) as resp:
        boot: dict[str, Any] = await resp.json()
    ws = await http.ws_connect(f"{node.base}/ws")
    await ws.send_json({"v": 1, "type": "join", "token": boot["token"], "ref": "j"})
    welcome = await ws.receive_json(timeout=5)
    assert welcome["type"] == "welcome" and welcome["ref"] == "j"
    return ws, boot


async def _error(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=5)
        if message["type"] == "error":
            return message


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{oops", "bad_json"),
        ("[" * 20_000 + "]" * 20_000, "bad_json"),
        ('{"a":' * 9_000 + "1" + "}" * 9_000, "bad_json"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"offer","session":"x"}', "bad_message"),
        ('{"type":"offer","session":"nope","sdp":"v=0"}', "not_found"),
        ('{"type":"end","session":"someone-else"}', "not_found"),
    ],
)
async def test_bad_message_gets_its_code_and_the_socket_stays_open(
    node: RunningNode, http: aiohttp.ClientSession, raw: str, code: str
) -> None:
    ws, boot = await _joined_socket(node, http)
    try:
        await ws.send_str(raw)
        assert (await _error(ws))["code"] == code
        await ws.send_json({"type": "end", "session": boot["session"], "ref": "e"})
        ended = await ws.receive_json(timeout=5)
        while ended["type"] != "ended":
            ended = await ws.receive_json(timeout=5)
        assert ended["session"] == boot["session"]
    finally:
        await ws.close()


@pytest.mark.parametrize(
    ("sdp", "words"),
    [
        ("hello", "not SDP"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no audio or video"),
        (
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96\r\n",
            "could not be read",
        ),
    ],
)
async def test_bad_sdp_is_refused_with_the_reason(
    node: RunningNode, http: aiohttp.ClientSession, sdp: str, words: str
) -> None:
    ws, boot = await _joined_socket(node, http)
    try:
        await ws.send_json({"type": "offer", "session": boot["session"], "sdp": sdp})
        error = await _error(ws)
        assert error["code"] == "bad_sdp"
        assert words in error["reason"]
        assert node.node.desk.sessions[boot["session"]].summary()["media"] == {
            "customer": "none",
            "technician": "none",
        }
    finally:
        await ws.close()
    assert await node.metric("peer_connections") == 0


@pytest.mark.parametrize("dropped", ["a=setup:", "a=fingerprint:"])
async def test_offer_without_dtls_lines_is_refused_in_words(
    node: RunningNode, http: aiohttp.ClientSession, dropped: str
) -> None:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    lines = pc.localDescription.sdp.split("\r\n")
    await pc.close()
    sdp = "\r\n".join(line for line in lines if not line.startswith(dropped))
    ws, boot = await _joined_socket(node, http)
    try:
        await ws.send_json({"type": "offer", "session": boot["session"], "sdp": sdp})
        error = await _error(ws)
        assert error["code"] == "bad_sdp"
        assert "DTLS" in error["reason"]
    finally:
        await ws.close()
    assert await node.metric("peer_connections") == 0


async def test_demo_viewer_token_does_not_open_a_support_session(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    room = node.node.rooms.create("Grinder demo", "pat")
    async with http.get(
        node.node.rooms.viewer_url(room.id), headers={"Accept": "application/json"}
    ) as resp:
        viewer_token = (await resp.json())["token"]
    ws = await http.ws_connect(f"{node.base}/ws")
    try:
        await ws.send_json({"type": "join", "token": viewer_token, "ref": "j"})
        error = await _error(ws)
        assert error["code"] == "forbidden" and error["ref"] == "j"
        assert node.node.desk.sessions == {}
    finally:
        await ws.close()


async def test_offer_before_join_is_refused(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws = await http.ws_connect(f"{node.base}/ws")
    try:
        await ws.send_json({"type": "offer", "session": "s", "sdp": "v=0"})
        assert (await _error(ws))["code"] == "wrong_state"
    finally:
        await ws.close()


async def test_forged_participant_token_is_refused(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws = await http.ws_connect(f"{node.base}/ws")
    try:
        await ws.send_json({"type": "join", "token": "abc.def"})
        assert (await _error(ws))["code"] == "forged"
        assert node.node.desk.sessions == {}
    finally:
        await ws.close()


async def test_oversize_message_closes_with_1009(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws = await http.ws_connect(f"{node.base}/ws")
    await ws.send_str("x" * (node.config.max_message_bytes + 10))
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1009


async def test_second_tab_wins_and_first_is_told(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    first, boot = await _joined_socket(node, http)
    second = await http.ws_connect(f"{node.base}/ws")
    try:
        await second.send_json({"type": "join", "token": boot["token"]})
        error = await _error(first)
        assert error["code"] == "replaced"
    finally:
        await first.close()
        await second.close()
