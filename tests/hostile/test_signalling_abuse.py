"""Signalling abuse: floods, messages at the wrong moment, tabs, expired rejoins."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from server.limits import AddressLimits, TokenBucket
from server.links import Kind
from server.media import rtc_configuration
from tests.conftest import RunningNode
from tests.hostile.conftest import NodeFactory, next_of, open_customer
from tests.peers import Customer, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refuses_past_its_burst_and_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() and not bucket.take()
    clock.now += 100
    assert bucket.full


def test_address_table_is_bounded() -> None:
    limits = AddressLimits(rate_per_s=1, burst=1, max_keys=3, clock=FakeClock())
    for i in range(10):
        assert limits.take(f"10.0.0.{i}")
    assert len(limits) == 3
    assert not limits.take("10.0.0.9")  # still remembered: no token left
    assert limits.take("10.0.0.0")  # forgotten, so it starts afresh


async def _offer_sdp() -> str:
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        pc.addTransceiver("video", direction="sendonly")
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_flood_is_refused_once_then_closed_with_1008(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(ws_messages_per_s=0.01, ws_burst=5, flood_strikes=20)
    ws = await http.ws_connect(f"{node.base}/ws")
    for _ in range(40):
        await ws.send_str('{"v": 1, "type": "dance"}')
    codes = []
    async for message in ws:
        assert message.type == aiohttp.WSMsgType.TEXT
        codes.append(json.loads(message.data)["code"])
    assert codes == ["unknown_type"] * 5 + ["rate_limited"]
    assert ws.close_code == 1008
    sockets = node.node.signalling.sockets
    await wait_for(lambda: not sockets, 5, "the server to drop the socket")


async def test_sockets_from_one_address_share_its_budget(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(address_messages_per_s=0.01, address_burst=6)
    first = await http.ws_connect(f"{node.base}/ws")
    second = await http.ws_connect(f"{node.base}/ws")
    try:
        for _ in range(4):
            await first.send_str('{"type": "dance"}')
            assert (await next_of(first, "error"))["code"] == "unknown_type"
        codes = []
        for _ in range(3):
            await second.send_str('{"type": "dance"}')
            codes.append((await next_of(second, "error"))["code"])
        assert codes == ["unknown_type", "unknown_type", "rate_limited"]
    finally:
        await first.close()
        await second.close()


async def test_an_answer_from_a_client_is_the_wrong_moment(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws, boot = await open_customer(node, http)
    try:
        await ws.send_json(
            {"type": "answer", "session": boot["session"], "sdp": "v=0", "ref": "a"}
        )
        error = await next_of(ws, "error")
        assert error == {
            "v": 1,
            "type": "error",
            "code": "wrong_state",
            "reason": "The server never sends offers, so there is nothing to answer.",
            "ref": "a",
        }
    finally:
        await ws.close()


async def test_candidate_before_any_offer_is_the_wrong_moment(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws, boot = await open_customer(node, http)
    try:
        await ws.send_json(
            {
                "type": "candidate",
                "session": boot["session"],
                "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                "mid": "0",
                "ref": "c",
            }
        )
        error = await next_of(ws, "error")
        assert (error["code"], error["reason"], error["ref"]) == (
            "wrong_state",
            "Send the offer before its candidates.",
            "c",
        )
    finally:
        await ws.close()


async def test_trickled_candidates_after_the_offer_are_taken_or_refused(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws, boot = await open_customer(node, http)
    session = boot["session"]
    try:
        sdp = await _offer_sdp()
        lines = [ln for ln in sdp.splitlines() if ln.startswith("a=candidate:")]
        bare = "".join(
            ln + "\r\n" for ln in sdp.splitlines() if not ln.startswith("a=candidate:")
        )
        await ws.send_json({"type": "offer", "session": session, "sdp": bare})
        await next_of(ws, "answer")
        for ref, text in [
            ("c1", lines[0][2:]),
            ("c2", "candidate:2 1 udp 2122260223 host.local 50000 typ host"),
            ("c3", "candidate:3 1 tcp 1518280447 ::1 9 typ host tcptype active"),
            ("bad", "candidate:nonsense"),
            ("end", ""),
        ]:
            await ws.send_json(
                {
                    "type": "candidate",
                    "session": session,
                    "candidate": text,
                    "mid": "0",
                    "ref": ref,
                }
            )
        error = await next_of(ws, "error")
        assert error["code"] == "bad_sdp" and error["ref"] == "bad"
        assert error["reason"].startswith("The candidate could not be read")
        await ws.send_json({"type": "end", "session": session, "ref": "e"})
        await next_of(ws, "ended")
    finally:
        await ws.close()


@pytest.fixture
def silent_stun() -> Iterator[str]:
    """A STUN server on loopback that never answers: gathering waits for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"stun:127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_second_offer_while_the_first_is_answered_is_refused(
    make_node: NodeFactory,
    http: aiohttp.ClientSession,
    silent_stun: str,
) -> None:
    node = await make_node(ice_servers=[silent_stun])
    first, second = Customer(node.base, http), Customer(node.base, http)
    try:
        boot = await first.open_link(node.direct_link())
        session = boot["session"]
        await first.connect_ws()
        await first.send(type="join", token=boot["token"])
        await first.expect("welcome")
        sdp = await _offer_sdp()
        await first.send(type="offer", session=session, sdp=sdp, ref="o1")
        seats = node.node.desk.sessions[session]._seats.values()
        await wait_for(lambda: any(s.answering for s in seats), 5, "offer in flight")

        await second.connect_ws()
        await second.send(type="join", token=boot["token"])
        await second.expect("welcome")
        await second.send(type="offer", session=session, sdp=sdp, ref="o2")
        error = await second.expect("error", ref="o2")
        assert error["code"] == "wrong_state"
        assert error["reason"] == (
            "An offer for this session is still being answered; wait for its answer."
        )
        # The first tab was replaced meanwhile, but its offer is still answered.
        assert (await first.expect("answer", timeout_s=15))["ref"] == "o1"
    finally:
        await first.close()
        await second.close()


async def test_replaced_tab_can_no_longer_drive_the_session(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    first, boot = await open_customer(node, http)
    second = await http.ws_connect(f"{node.base}/ws")
    try:
        await second.send_json({"type": "join", "token": boot["token"]})
        assert (await next_of(first, "error"))["code"] == "replaced"
        await first.send_json({"type": "end", "session": boot["session"], "ref": "e"})
        error = await next_of(first, "error")
        assert (error["code"], error["ref"]) == ("replaced", "e")
        assert node.node.desk.sessions[boot["session"]].state != "ended"
    finally:
        await first.close()
        await second.close()


async def test_ice_restart_offer_gets_a_typed_error_and_the_peer_stays(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws, boot = await open_customer(node, http)
    session = boot["session"]
    try:
        sdp = await _offer_sdp()
        await ws.send_json({"type": "offer", "session": session, "sdp": sdp})
        await next_of(ws, "answer")
        restart = re.sub(r"a=ice-ufrag:\S+", "a=ice-ufrag:rst1", sdp)
        restart = re.sub(r"a=ice-pwd:\S+", "a=ice-pwd:" + "p" * 24, restart)
        await ws.send_json(
            {"type": "offer", "session": session, "sdp": restart, "ref": "r"}
        )
        error = await next_of(ws, "error")
        assert (error["code"], error["ref"]) == ("ice_restart_unsupported", "r")
        assert "offer from a new one" in error["reason"]
        media = node.node.desk.sessions[session].summary()["media"]
        assert media["customer"] == "connecting"
    finally:
        await ws.close()


async def test_rejoin_after_the_link_expired_is_let_in_by_the_open_session(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(rejoin_grace_s=30.0)
    signer = node.node.signer
    ws, boot = await open_customer(node, http)
    grant = signer.verify(boot["token"])
    await ws.close()  # the network blips; the link expires meanwhile
    expired, _ = signer.sign(Kind.PARTICIPANT, -5, **grant.scope)

    again = await http.ws_connect(f"{node.base}/ws")
    try:
        await again.send_json({"type": "join", "token": expired, "ref": "j"})
        welcome = await next_of(again, "welcome")
        assert welcome["session"] == boot["session"]
    finally:
        await again.close()

    # An expired token for a session that is gone lets no one in.
    gone, _ = signer.sign(Kind.PARTICIPANT, -5, **{**grant.scope, "sid": "f" * 16})
    other = await http.ws_connect(f"{node.base}/ws")
    try:
        await other.send_json({"type": "join", "token": gone})
        assert (await next_of(other, "error"))["code"] == "expired"
        # Nor does a token whose link was withdrawn, even for an open session.
        await signer.revoke(grant.get("link"), 3600)
        await other.send_json({"type": "join", "token": expired})
        assert (await next_of(other, "error"))["code"] == "revoked"
    finally:
        await other.close()


async def test_oversize_message_closes_1009_and_frees_the_seat(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws, boot = await open_customer(node, http)
    await ws.send_str("x" * (node.config.max_message_bytes + 1))
    closing = await ws.receive(timeout=5)
    while closing.type == aiohttp.WSMsgType.TEXT:  # a session summary came first
        closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1009
    session = node.node.desk.sessions[boot["session"]]
    await wait_for(lambda: not session.summary()["present"]["customer"], 5)
    assert session.summary()["media"]["customer"] == "none"
