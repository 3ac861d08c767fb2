"""SDP from browsers and attackers: a working answer or a clear refusal, never a
traceback in the log. The last tests fuzz the message parser and the SDP entry
point with hypothesis: only typed errors come out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.errors import ProtocolError, SdpError
from server.media import Feed, FrameTrack, Peer
from server.messages import ClientMessage, parse
from tests.conftest import RunningNode
from tests.hostile.conftest import open_customer
from tests.hostile.sdp_corpus import BROKEN, VALID, h264_high_only, real_offer
from tests.peers import wait_for


def _no_surprises(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
    assert "Traceback" not in caplog.text


async def _offer_over_ws(
    node: RunningNode, http: aiohttp.ClientSession, sdp: str
) -> dict[str, object]:
    ws, boot = await open_customer(node, http)
    try:
        await ws.send_json(
            {"type": "offer", "session": boot["session"], "sdp": sdp, "ref": "o"}
        )
        while True:
            message: dict[str, object] = await ws.receive_json(timeout=10)
            if message["type"] in ("answer", "error"):
                return message
    finally:
        await ws.close()
        await wait_for(lambda: Peer.open_count == 0, 10, "peers freed")


@pytest.mark.parametrize("name", list(VALID))
async def test_unusual_but_valid_offer_is_answered(
    node: RunningNode,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    caplog.set_level(logging.INFO)
    sdp = VALID[name](await real_offer())
    reply = await _offer_over_ws(node, http, sdp)
    assert reply["type"] == "answer", reply
    assert str(reply["sdp"]).startswith("v=0")
    _no_surprises(caplog)


async def test_audio_only_offer_is_answered(
    node: RunningNode, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await _offer_over_ws(
        node, http, await real_offer(video=False, receive=False)
    )
    assert reply["type"] == "answer"
    assert "m=video" not in str(reply["sdp"])
    _no_surprises(caplog)


@pytest.mark.parametrize("name", list(BROKEN))
async def test_broken_offer_is_refused_with_its_reason(
    node: RunningNode,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    variant, words = BROKEN[name]
    reply = await _offer_over_ws(node, http, variant(await real_offer()))
    assert reply["type"] == "error" and reply["code"] == "bad_sdp", reply
    assert words in str(reply["reason"]), reply
    assert reply["ref"] == "o"
    _no_surprises(caplog)


async def test_h264_high_only_is_refused_with_the_codecs_named(
    node: RunningNode, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """aiortc negotiates H.264 constrained baseline only; browsers always offer it."""
    reply = await _offer_over_ws(node, http, h264_high_only(await real_offer()))
    assert reply["code"] == "bad_sdp"
    assert reply["reason"] == (
        "The offer's video codecs (H264 640c1f) include none the server can use "
        "(H264 42001f, H264 42e01f, VP8)."
    )
    _no_surprises(caplog)


async def test_huge_offers_are_bounded(
    node: RunningNode, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    sdp = await real_offer()
    room = node.config.max_sdp_bytes - len(sdp) - 100
    padded = sdp.replace(
        "a=rtcp-mux\r\n",
        "a=rtcp-mux\r\n" + "a=x-pad:y\r\n" * (room // 33),
    )
    assert len(padded) <= node.config.max_sdp_bytes
    assert (await _offer_over_ws(node, http, padded))["type"] == "answer"

    huge = sdp + "a=x-pad:" + "y" * node.config.max_sdp_bytes + "\r\n"
    reply = await _offer_over_ws(node, http, huge)
    assert (reply["code"], reply["ref"]) == ("too_large", "o")
    assert (
        reply["reason"]
        == f"Field 'sdp' is over {node.config.max_sdp_bytes} characters."
    )
    _no_surprises(caplog)


# Property tests. Only ProtocolError may leave parse(); only SdpError may leave the
# answer path, whatever the input.

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    [
        "v",
        "type",
        "ref",
        "session",
        "sdp",
        "token",
        "width",
        "on",
        "index",
        "mid",
        "candidate",
        "room",
        "purpose",
        "layout",
        "question",
        "text",
    ]
)
_TYPES = st.sampled_from(
    [
        "join",
        "offer",
        "candidate",
        "end",
        "status",
        "accept",
        "auto_answer",
        "enter",
        "room_offer",
        "program",
        "moderate",
        "answer",
        "welcome",
        7,
        None,
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    kind=_TYPES,
    fields=st.dictionaries(_FIELDS, _JSON, max_size=6),
)
def test_parse_raises_only_protocol_errors_for_objects(
    kind: object, fields: dict[str, object]
) -> None:
    raw = json.dumps({**fields, "type": kind})
    try:
        message = parse(raw, max_bytes=64 * 1024, max_sdp_bytes=32 * 1024)
    except ProtocolError as exc:
        assert exc.code in {
            "bad_json",
            "bad_message",
            "unknown_type",
            "too_large",
            "wrong_state",
        }
        return
    assert isinstance(message, ClientMessage)


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=200) | st.binary(max_size=200))
def test_parse_raises_only_protocol_errors_for_any_text(raw: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse(raw, max_bytes=100, max_sdp_bytes=50)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def base_offer(loop: asyncio.AbstractEventLoop) -> str:
    return loop.run_until_complete(real_offer())


_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["drop", "dup", "swap", "insert", "truncate", "mutate"]),
        st.integers(min_value=0, max_value=200),
        st.text(
            alphabet=st.characters(codec="ascii", exclude_characters="\r\n"),
            max_size=40,
        ),
    ),
    min_size=1,
    max_size=4,
)


def _edit(sdp: str, edits: list[tuple[str, int, str]]) -> str:
    lines = sdp.split("\r\n")
    for op, at, text in edits:
        i = at % len(lines)
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, text)
        elif op == "truncate":
            lines[i] = lines[i][: len(text)]
        else:
            cut = len(lines[i]) // 2
            lines[i] = lines[i][:cut] + text + lines[i][cut + len(text) :]
        if not lines:
            lines = [""]
    return "\r\n".join(lines)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=_EDITS)
def test_answer_path_raises_only_sdp_errors(
    loop: asyncio.AbstractEventLoop,
    base_offer: str,
    caplog: pytest.LogCaptureFixture,
    edits: list[tuple[str, int, str]],
) -> None:
    sdp = _edit(base_offer, edits)

    async def attempt() -> None:
        feed = Feed("fuzz/customer", clock=lambda: 0.0)
        peer = Peer(
            "fuzz/customer",
            ice_servers=[],
            on_track=lambda track: None,
            on_state=lambda peer, state: None,
        )
        try:
            await peer.answer(sdp, [FrameTrack("audio", "a"), feed.subscribe("v")])
        except SdpError:
            pass
        finally:
            await peer.close()
            await feed.close()

    loop.run_until_complete(attempt())
    assert Peer.open_count == 0
    _no_surprises(caplog)
