"""SDP offers that browsers or attackers send, made from a real aiortc offer.

`valid_variants` are unusual but legal offers a session should survive;
`broken_variants` must be refused with a clear reason. Each is a function of a
real offer (an aiortc client's: video out, audio both ways, video in).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aiortc import RTCPeerConnection

from server.media import rtc_configuration

__all__ = ["BROKEN", "VALID", "h264_high_only", "real_offer"]

Variant = Callable[[str], str]


async def real_offer(*, video: bool = True, receive: bool = True) -> str:
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        if video:
            pc.addTransceiver("video", direction="sendonly")
        pc.addTransceiver("audio", direction="sendrecv")
        if receive:
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def _after_candidates(sdp: str, extra: str) -> str:
    """Add `extra` lines after the last candidate of every m-line."""
    return re.sub(r"(a=candidate:[^\r\n]*\r\n)(?!a=candidate)", rf"\g<1>{extra}", sdp)


def _extra_codecs(sdp: str) -> str:
    sdp = re.sub(r"(m=video \d+ \S+ [\d ]+)\r\n", r"\1 45 35\r\n", sdp)
    return sdp.replace(
        "a=rtpmap:97 VP8/90000\r\n",
        "a=rtpmap:45 AV1/90000\r\na=rtpmap:35 VP9/90000\r\n"
        "a=fmtp:35 profile-id=2\r\na=rtpmap:97 VP8/90000\r\n",
    )


def h264_high_only(sdp: str) -> str:
    """Video m-lines that offer only H.264 High profile (and its RTX)."""
    lines = []
    for line in sdp.split("\r\n"):
        if re.match(r"a=(rtpmap|rtcp-fb|fmtp):(97|98|99|100)[ /]", line):
            continue
        if line.startswith("m=video"):
            line = re.sub(r"( \d+)+$", " 101 102", line)
        lines.append(line.replace("profile-level-id=42e01f", "profile-level-id=640c1f"))
    return "\r\n".join(lines)


def _session_level_ice(sdp: str) -> str:
    """ICE credentials and fingerprint once at session level, as Firefox may."""
    ufrag = re.search(r"a=ice-ufrag:\S+\r\n", sdp)
    pwd = re.search(r"a=ice-pwd:\S+\r\n", sdp)
    prints = re.findall(r"a=fingerprint:[^\r\n]+\r\n", sdp)
    assert ufrag and pwd and prints
    head = ufrag.group(0) + pwd.group(0) + "".join(prints)
    for line in (ufrag.group(0), pwd.group(0), *prints):
        sdp = sdp.replace(line, "")
    return sdp.replace("t=0 0\r\n", "t=0 0\r\n" + head, 1)


MDNS = (
    "a=candidate:9 1 udp 2122260223 4f2a1c9e-0b7d-4e1f-9d2c-1a2b3c4d5e6f.local"
    " 50000 typ host\r\n"
)

VALID: dict[str, Variant] = {
    "as made": lambda sdp: sdp,
    "extra codecs (AV1, VP9)": _extra_codecs,
    "no end-of-candidates": lambda sdp: sdp.replace("a=end-of-candidates\r\n", ""),
    "no candidates (trickle later)": lambda sdp: re.sub(
        r"a=(candidate:[^\r\n]*|end-of-candidates)\r\n", "", sdp
    ),
    "TCP candidates": lambda sdp: _after_candidates(
        sdp,
        "a=candidate:7 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n"
        "a=candidate:8 1 tcp 1518280446 127.0.0.1 45000 typ host tcptype passive\r\n",
    ),
    "IPv6 candidates": lambda sdp: _after_candidates(
        sdp, "a=candidate:6 1 udp 2122262783 ::1 50002 typ host\r\n"
    ),
    "mDNS .local candidates": lambda sdp: _after_candidates(sdp, MDNS),
    "only mDNS candidates": lambda sdp: _after_candidates(
        re.sub(r"a=candidate:[^\r\n]*\r\n", "", sdp).replace(
            "a=end-of-candidates\r\n", MDNS + "a=end-of-candidates\r\n"
        ),
        "",
    ),
    "session-level ICE and fingerprint": _session_level_ice,
    "LF line ends": lambda sdp: sdp.replace("\r\n", "\n"),
    "unknown attributes": lambda sdp: sdp.replace(
        "a=rtcp-mux\r\n", "a=rtcp-mux\r\na=x-vendor-thing:1 2 3\r\na=rtcp-rsize\r\n"
    ),
}

BROKEN: dict[str, tuple[Variant, str]] = {
    "not SDP": (lambda sdp: "hello", "not SDP"),
    "no media": (lambda sdp: sdp.split("m=")[0], "no audio or video"),
    "payload type out of range": (
        lambda sdp: re.sub(r"(m=audio \d+ \S+) 96", r"\1 300", sdp, count=1),
        "could not be read",
    ),
    "broken rtpmap": (
        lambda sdp: sdp.replace("a=rtpmap:96 opus/48000/2", "a=rtpmap:96"),
        "could not be read",
    ),
    "port is not a number": (
        lambda sdp: re.sub(r"m=audio \d+", "m=audio many", sdp),
        "could not be read",
    ),
    "broken candidate": (
        lambda sdp: sdp.replace("a=candidate:", "a=candidate:x ", 1),
        "could not be read",
    ),
    "no ICE credentials": (
        lambda sdp: re.sub(r"a=ice-(ufrag|pwd):\S+\r\n", "", sdp),
        "The offer's video has no ICE username or password.",
    ),
    "no DTLS fingerprint": (
        lambda sdp: re.sub(r"a=fingerprint:[^\r\n]+\r\n", "", sdp),
        "The offer's video has no DTLS fingerprint.",
    ),
    "unknown DTLS setup": (
        lambda sdp: sdp.replace("a=setup:actpass", "a=setup:sideways"),
        "could not be read",
    ),
    "no codec in common": (
        lambda sdp: re.sub(
            r"a=rtpmap:(\d+) (opus|G722|PCMU|PCMA)/", r"a=rtpmap:\1 SPEEX/", sdp
        ),
        "The offer's audio codecs (SPEEX) include none the server can use",
    ),
}
