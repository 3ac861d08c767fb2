"""Handing a live customer on: transfer to a named technician, and an added expert.

Real aiortc peers through a real node: the customer keeps one peer connection the
whole time; only the technicians' side changes. Voices are tones (customer 440 Hz,
first technician 660 Hz, the other technician 1000 Hz) so that what each side hears,
and what the recording holds, can be told apart in the spectrum.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

from tests.conftest import RunningNode
from tests.peers import Customer, Technician, wait_for
from tests.synthetic import ToneTrack

CUSTOMER_HZ, FIRST_HZ, OTHER_HZ = 440.0, 660.0, 1000.0
TONES = [CUSTOMER_HZ, FIRST_HZ, OTHER_HZ]
Sound = deque[npt.NDArray[np.int16]]


def tone_levels(
    samples: npt.NDArray[Any], rate: int, tones: list[float]
) -> dict[float, float]:
    """Each tone's peak in the spectrum of `samples`, relative to the loudest tone."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    peaks = {
        hz: float(spectrum[(freqs > hz - 8) & (freqs < hz + 8)].max()) for hz in tones
    }
    loudest = max(peaks.values()) or 1.0
    return {hz: peak / loudest for hz, peak in peaks.items()}


class _Tap(MediaStreamTrack):
    """Passes a received audio track through, keeping its first channel."""

    kind = "audio"

    def __init__(self, track: MediaStreamTrack, sound: Sound) -> None:
        super().__init__()
        self._track = track
        self._sound = sound

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self._track.recv()
        if isinstance(frame, av.AudioFrame):
            channels = len(frame.layout.channels)
            samples = frame.to_ndarray().reshape(-1, channels)[:, 0]
            self._sound.append(samples.astype(np.int16))
        return frame


class Listening:
    """Mixed into a test client: keeps the last 3 s of what it hears."""

    sound: Sound

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            track = _Tap(track, self.sound)
        super()._on_track(track)  # type: ignore[misc]


class ListeningCustomer(Listening, Customer):
    def __init__(self, base: str, http: aiohttp.ClientSession, colour: str) -> None:
        super().__init__(base, http, colour)
        self.sound = deque(maxlen=150)


class ListeningTechnician(Listening, Technician):
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        super().__init__(base, http)
        self.sound = deque(maxlen=150)


async def _console(
    node: RunningNode, name: str
) -> tuple[ListeningTechnician, aiohttp.ClientSession]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    technician = ListeningTechnician(node.base, http)
    await technician.sign_in(node.login_link(name, "technician"))
    await technician.join()
    await technician.expect("presence", status="available")
    return technician, http


async def _hears(client: Listening, seconds: float = 1.5) -> dict[float, float]:
    """Tone levels of what `client` hears from now on, over `seconds`."""
    client.sound.clear()
    await wait_for(lambda: len(client.sound) >= seconds * 50, 15, "audio")
    samples = np.concatenate(list(client.sound))
    assert float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 500, "silence"
    return tone_levels(samples, 48_000, TONES)


def _timeline(node: RunningNode, session: str) -> list[dict[str, Any]]:
    path = node.config.recordings_dir / session / "timeline.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def test_transfer_to_a_named_technician_rewires_only_the_technician_side(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    first, first_http = await _console(node, "tech-a")
    customer = ListeningCustomer(node.base, http, colour="red")
    second: ListeningTechnician | None = None
    second_http = None
    try:
        # Queued, offered to tech-a, answered, live.
        await customer.open_link(node.support_link())
        await customer.connect_ws()
        await customer.send(type="join", token=customer.boot["token"])
        session = customer.boot["session"]
        offer = await first.expect("offered", session=session)
        await first.send(type="accept", entry=offer["entry"])
        await first.expect("session", session=session, state="waiting")
        customer.pc.addTransceiver(customer.camera, direction="sendonly")
        customer.pc.addTransceiver(ToneTrack(CUSTOMER_HZ), direction="sendrecv")
        customer.pc.addTransceiver("video", direction="recvonly")
        await customer.negotiate(session, width=640, height=480)
        await first.take(session, FIRST_HZ)
        await customer.expect("session", state="live", timeout_s=15)
        await wait_for(lambda: first.video.colours["red"] >= 3, 15, "frames")
        assert (await _hears(customer))[FIRST_HZ] == 1.0

        # tech-b signs in; tech-a's console lists them, and hands the customer on.
        second, second_http = await _console(node, "tech-b")
        team = await first.expect("team")
        await wait_for(
            lambda: any(
                t["name"] == "tech-b" and t["status"] == "available"
                for t in (first.last("team") or team)["technicians"]
            ),
            5,
            "tech-b listed",
        )
        await first.send(
            type="transfer", session=session, technician="nobody", ref="t0"
        )
        assert (await first.expect("error", ref="t0"))["code"] == "unavailable"
        await first.send(type="transfer", session=session, technician="tech-b")
        ended = await first.expect("ended", session=session)
        assert ended["reason"] == "transferred to tech-b"
        await first.expect("presence", status="wrap-up")
        assert (await customer.expect("queue", technician="tech-b"))["position"] == 1

        offered = await second.expect("offered", session=session)
        assert offered["transfer"] is True
        await second.send(type="accept", entry=offered["entry"])
        await second.expect("session", session=session, state="waiting")
        await second.take(session, OTHER_HZ)
        await wait_for(lambda: second.video.colours["red"] >= 3, 15, "frames to B")
        heard = await _hears(customer)
        assert heard[OTHER_HZ] == 1.0 and heard[FIRST_HZ] < 0.03, heard

        # One peer connection for the customer the whole time: one answer only,
        # and the refused transfer changed nothing.
        answers = [m for m in customer.messages if m["type"] == "answer"]
        assert len(answers) == 1
        assert customer.pc.connectionState == "connected"
        assert customer.last("session", state="live") is not None
        await second.send(type="end", session=session, reason="fixed")
        await customer.expect("ended", session=session)
    finally:
        await customer.close()
        for client in (first, second):
            if client is not None:
                await client.close()
        for jar in (first_http, second_http):
            if jar is not None:
                await jar.close()

    events = _timeline(node, session)
    transfer = next(e for e in events if e["kind"] == "transfer")
    assert transfer["technician"] == "tech-a" and transfer["to"] == "tech-b"
    assigned = [e["technician"] for e in events if e["kind"] == "assigned"]
    assert assigned == ["tech-a", "tech-b"]
    await node.node.switchboard.refresh_figures()
    assert node.node.switchboard.figures["support"]["30m"]["answered"] == 1


def _recorded_tones(
    directory: Path, start_s: float, end_s: float
) -> dict[float, float]:
    with av.open(str(directory / "video.mp4")) as container:
        rate = container.streams.audio[0].rate
        chunks = [
            frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
            for frame in container.decode(audio=0)
            if frame.time is not None and start_s <= frame.time <= end_s
        ]
    assert chunks, "no recorded audio in the window"
    return tone_levels(np.concatenate(chunks), rate, TONES)


async def test_added_expert_sees_and_hears_the_customer_and_everyone_hears_them(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    technician, tech_http = await _console(node, "tech-a")
    expert, expert_http = await _console(node, "tech-x")
    customer = ListeningCustomer(node.base, http, colour="red")
    try:
        session = await customer.join(node.direct_link("tech-a"))
        await technician.expect("session", session=session)
        await technician.take(session, FIRST_HZ)
        await customer.expect("session", state="live", timeout_s=15)

        # Invite by name; the expert accepts on their console and connects.
        await technician.send(
            type="invite", session=session, technician="tech-x", ref="inv"
        )
        await technician.expect("ok", ref="inv")
        await technician.expect("session", session=session, invite="tech-x")
        offered = await expert.expect("offered", session=session)
        assert offered["expert_for"] == "tech-a"
        await expert.send(type="accept", entry=offered["entry"])
        summary = await expert.expect("session", session=session, expert="tech-x")
        assert summary["state"] == "live"
        await expert.expect("presence", status="busy")
        await expert.take(session, OTHER_HZ)
        await wait_for(lambda: expert.video.colours["red"] >= 3, 15, "expert sees")
        await wait_for(lambda: expert.audio_frames >= 50, 10, "expert hears")

        # Each hears the other two, never themselves.
        for client, own in ((customer, CUSTOMER_HZ), (technician, FIRST_HZ)):
            heard = await _hears(client)
            others = [hz for hz in TONES if hz != own]
            assert min(heard[hz] for hz in others) > 0.2, (own, heard)
            assert heard[own] < 0.03, (own, heard)
        heard = await _hears(expert)
        assert min(heard[CUSTOMER_HZ], heard[FIRST_HZ]) > 0.2, heard
        assert heard[OTHER_HZ] < 0.03, heard

        # The expert leaves; the session goes on and they are free again.
        await expert.send(type="leave", session=session, ref="bye")
        left = await expert.expect("ended", session=session)
        assert left["reason"] == "tech-x left"
        await expert.expect("presence", status="available")
        await technician.expect("session", session=session, expert="")
        await _hears(customer, 0.5)  # what was already on its way
        heard = await _hears(customer)
        assert heard[FIRST_HZ] == 1.0 and heard[OTHER_HZ] < 0.03, heard
        assert customer.last("ended") is None
        await technician.send(type="end", session=session, reason="done")
        await customer.expect("ended", session=session)
    finally:
        for client in (customer, technician, expert):
            await client.close()
        await tech_http.close()
        await expert_http.close()

    # The recording holds all three voices while the expert was there.
    events = _timeline(node, session)
    joined = next(e["t"] for e in events if e["kind"] == "expert")
    gone = next(e["t"] for e in events if e["kind"] == "expert_left")
    directory = node.config.recordings_dir / session
    during = _recorded_tones(directory, joined + 1.5, gone - 0.3)
    assert min(during.values()) > 0.2, during
    assert [e["kind"] for e in events].count("expert") == 1


async def test_expert_from_a_queue_with_a_skill_who_vanishes_is_let_go(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    technician, tech_http = await _console(node, "tech-a")
    unskilled, unskilled_http = await _console(node, "tech-u")
    customer = ListeningCustomer(node.base, http, colour="red")
    expert_http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    expert = Technician(node.base, expert_http)
    try:
        session = await customer.join(node.direct_link("tech-a"))
        await technician.expect("session", session=session)
        await technician.take(session, FIRST_HZ)
        await customer.expect("session", state="live", timeout_s=15)

        # tech-u, asked by name, says no: the invitation lapses, tech-a is told.
        await technician.send(type="invite", session=session, technician="tech-u")
        declined = await unskilled.expect("offered", session=session)
        await unskilled.send(type="decline", entry=declined["entry"])
        lapsed = await technician.expect("error", code="no_answer")
        assert lapsed["reason"] == "tech-u did not answer the invitation."
        unskilled.messages.clear()

        # Anyone serving "support" with the espresso skill: not tech-u, who lacks it.
        await technician.send(
            type="invite", session=session, skill="espresso", ref="inv"
        )
        await technician.expect("ok", ref="inv")
        await expert.sign_in(
            node.login_link("tech-x", "technician", skills={"espresso": 2})
        )
        await expert.join()
        offered = await expert.expect("offered", session=session)
        assert offered["expert_for"] == "tech-a"
        assert unskilled.last("offered") is None
        await expert.send(type="accept", entry=offered["entry"])
        await expert.expect("session", session=session, expert="tech-x")

        # The expert's console vanishes before connecting, and does not come back
        # within the grace.
        assert expert.ws is not None
        technician.messages.clear()
        await expert.ws.close()
        summary = await technician.expect(
            "session", session=session, expert="", timeout_s=10
        )
        assert summary["state"] == "live"
        assert customer.last("ended") is None
        await technician.send(type="end", session=session, reason="done")
        await customer.expect("ended", session=session)
    finally:
        for client in (customer, technician, unskilled, expert):
            await client.close()
        for jar in (tech_http, unskilled_http, expert_http):
            await jar.close()

    events = _timeline(node, session)
    invites = [e for e in events if e["kind"] == "invite"]
    assert [(e["to"], e["queue"]) for e in invites] == [
        ("tech-u", "support"),
        ("", "support"),
    ]
    assert [e["kind"] for e in events].count("invite_lapsed") == 1
    left = next(e for e in events if e["kind"] == "expert_left")
    assert left == {**left, "expert": "tech-x"}
    assert "did not return" in left["reason"]
