"""The message parser: every bad input gets a typed error, never an exception."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import ProtocolError
from server.messages import ClientMessage, Join, Offer, parse, schema


def _parse(raw: str | bytes) -> object:
    return parse(raw, max_bytes=4096, max_sdp_bytes=1024)


def test_offer_is_parsed_into_its_type() -> None:
    message = _parse('{"v":1,"type":"offer","session":"s1","sdp":"v=0","ref":"r"}')
    assert message == Offer(session="s1", sdp="v=0", ref="r")


def test_join_without_token_is_valid_for_consoles() -> None:
    assert _parse('{"type":"join"}') == Join()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":7}', "unknown_type"),
        ('{"type":"offer","sdp":"v=0"}', "bad_message"),
        ('{"type":"offer","session":5,"sdp":"v=0"}', "bad_message"),
        ('{"type":"offer","session":"s","sdp":"v=0","width":-1}', "bad_message"),
        ('{"type":"offer","session":"s","sdp":"v=0","width":true}', "bad_message"),
        ('{"type":"end","session":"s","ref":{"x":1}}', "bad_message"),
        ('{"v":2,"type":"end","session":"s"}', "bad_message"),
        (json.dumps({"type": "offer", "session": "s", "sdp": "v" * 2000}), "too_large"),
        ("x" * 5000, "too_large"),
        ('{"type":"auto_answer","on":"yes"}', "bad_message"),
        ('{"type":"accept"}', "bad_message"),
    ],
)
def test_bad_messages_get_their_code(raw: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        _parse(raw)
    assert caught.value.code == code


def test_error_carries_the_ref_back() -> None:
    with pytest.raises(ProtocolError) as caught:
        _parse('{"type":"end","ref":"r9"}')
    assert caught.value.to_wire()["ref"] == "r9"


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_protocol_error(raw: str) -> None:
    with contextlib.suppress(ProtocolError):
        _parse(raw)


@given(
    st.dictionaries(
        st.sampled_from(["type", "session", "sdp", "token", "width", "ref", "v"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=20), st.booleans()),
    )
)
def test_any_object_parses_or_raises_protocol_error(data: dict[str, object]) -> None:
    try:
        message = _parse(json.dumps(data))
    except ProtocolError:
        return
    assert isinstance(message, ClientMessage)


def test_schema_lists_client_types() -> None:
    assert {"join", "offer", "end", "accept", "transfer"} <= set(schema()["client"])
    assert "queue" in schema()["server"] and "join" not in schema()["server"]


def test_stroke_points_are_whole_numbers_in_range() -> None:
    base = '{"type":"stroke","session":"s","shape":"arrow","points":%s}'
    assert _parse(base % "[0, 10000, 5000, 5000]") is not None
    for bad in ("[1.5, 2]", "[-1, 2]", "[10001, 2]", '"1,2"', "[true, 1]"):
        with pytest.raises(ProtocolError) as caught:
            _parse(base % bad)
        assert caught.value.code == "bad_message", bad
        assert "whole numbers 0-10000" in caught.value.reason
    with pytest.raises(ProtocolError) as caught:
        _parse(base % json.dumps(list(range(513))))
    assert caught.value.code == "too_large"


def test_tool_choices_are_checked() -> None:
    with pytest.raises(ProtocolError) as caught:
        _parse('{"type":"camera_control","session":"s","action":"selfdestruct"}')
    assert "facing, photo, torch, zoom" in caught.value.reason
    with pytest.raises(ProtocolError):
        _parse(
            '{"type":"stroke","session":"s","shape":"arrow","points":[],"colour":"x"}'
        )
