"""A customer waits in a queue, is offered to a technician, answered, transferred."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import aiohttp
import av

from tests.conftest import RunningNode
from tests.peers import Customer, Technician, wait_for
from tests.synthetic import ToneTrack


async def _console(
    node: RunningNode, http: aiohttp.ClientSession, name: str, **scope: Any
) -> Technician:
    technician = Technician(node.base, http)
    await technician.sign_in(node.login_link(name, "technician", **scope))
    await technician.join()
    await technician.expect("presence", status="available")
    return technician


async def test_queued_customer_is_offered_answered_and_recorded(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer = Customer(node.base, http, colour="blue")
    await customer.open_link(node.support_link("support", skills={"lang:en": 1}))
    await customer.connect_ws()
    await customer.send(type="join", token=customer.boot["token"])
    place = await customer.expect("queue")
    assert place["position"] == 1
    assert place["estimated_wait_s"] is None  # no handle times yet: no made-up number

    # A technician without the skill is not offered the customer; one with it is.
    other_http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    unskilled = await _console(node, other_http, "tech-fr", skills={"lang:fr": 5})
    technician = await _console(node, tech_http, "tech-en", skills={"lang:en": 3})
    session = customer.boot["session"]
    try:
        offer = await technician.expect("offered", session=session)
        assert unskilled.last("offered") is None
        await technician.send(type="accept", entry=offer["entry"])
        await technician.expect("session", session=session, state="waiting")
        await technician.expect("presence", status="busy")

        # The customer connects media once a technician is assigned.
        customer.pc.addTransceiver(customer.camera, direction="sendonly")
        customer.pc.addTransceiver("audio", direction="recvonly")
        await customer.negotiate(session, width=640, height=480)
        await technician.take(session)
        await customer.expect("session", state="live", timeout_s=15)
        await wait_for(lambda: technician.video.colours["blue"] >= 3, 15, "frames")

        await technician.send(type="end", session=session, reason="fixed")
        await customer.expect("ended", session=session)
        await technician.expect("presence", status="wrap-up")
        await technician.send(
            type="disposition",
            session=session,
            code="resolved",
            notes="descaled",
            ref="ok",
        )
        await technician.expect("ok", ref="ok")
        await technician.send(
            type="disposition", session=session, code="bogus", ref="d"
        )
        assert (await technician.expect("error", ref="d"))["code"] == "bad_message"
        await node.node.switchboard.refresh_figures()
        metrics = await _metrics(node)
        assert 'tapline_queue_waiting{queue="support"} 0' in metrics
        assert 'tapline_technicians{status="wrap-up"} 1' in metrics
        assert 'tapline_technicians{status="available"} 1' in metrics
    finally:
        await customer.close()
        await technician.close()
        await unskilled.close()
        await other_http.close()

    lines = (node.config.recordings_dir / session / "timeline.jsonl").read_text()
    events = [json.loads(line) for line in lines.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds.index("assigned") < kinds.index("end") < kinds.index("disposition")
    assert events[-1]["code"] == "resolved" and events[-1]["notes"] == "descaled"
    await node.node.switchboard.refresh_figures()
    figures = node.node.switchboard.figures["support"]["30m"]
    assert figures["answered"] == 1 and figures["aht_s"] is not None


async def _metrics(node: RunningNode) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{node.base}/metrics") as r:
        return await r.text()


async def test_unanswered_offer_goes_to_the_next_technician(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    node.node.switchboard.router.queues["support"] = (
        node.node.switchboard.router.queues["support"].__class__(
            "support", offer_timeout_s=0.5, max_missed=1
        )
    )
    other_http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    first = await _console(node, tech_http, "tech-a")
    second = await _console(node, other_http, "tech-b")
    customer = Customer(node.base, http)
    try:
        await customer.open_link(node.support_link())
        await customer.connect_ws()
        await customer.send(type="join", token=customer.boot["token"])
        session = customer.boot["session"]
        offered = [first, second]
        got = await _first_offer(offered, session)
        other = second if got is first else first
        # Nobody accepts: the offer lapses, goes to the other technician, and the
        # one who missed it is set away (max_missed=1).
        await other.expect("offered", session=session, timeout_s=5)
        await got.expect("withdrawn", timeout_s=5)
        await got.expect("presence", status="away", timeout_s=5)
    finally:
        await customer.close()
        await first.close()
        await second.close()
        await other_http.close()


async def _first_offer(consoles: list[Technician], session: str) -> Technician:
    await wait_for(
        lambda: any(c.last("offered", session=session) for c in consoles), 5, "offer"
    )
    return next(c for c in consoles if c.last("offered", session=session))


async def test_customer_who_leaves_the_queue_is_counted_as_abandoned(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    customer = Customer(node.base, http)
    try:
        await customer.open_link(node.support_link())
        await customer.connect_ws()
        await customer.send(type="join", token=customer.boot["token"])
        await customer.expect("queue")
        await customer.send(type="end", session=customer.boot["session"])
        await customer.expect("ended")
    finally:
        await customer.close()
    board = node.node.switchboard
    await wait_for(lambda: not node.node.desk.sessions, 5, "session closed")
    await board.refresh_figures()
    assert board.figures["support"]["waiting"] == 0
    assert board.figures["support"]["30m"]["abandoned"] == 1


async def test_queued_customer_who_reloads_keeps_their_place(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    link = node.support_link()
    first = Customer(node.base, http)
    second = Customer(node.base, tech_http)
    again = Customer(node.base, http)
    try:
        for customer, url in ((first, link), (second, node.support_link())):
            await customer.open_link(url)
            await customer.connect_ws()
            await customer.send(type="join", token=customer.boot["token"])
            await customer.expect("queue")
        assert (await second.expect("queue"))["position"] == 2
        assert first.ws is not None
        await first.ws.close()  # the tab closes
        await again.open_link(link)  # the same phone opens the link again
        assert again.boot["session"] == first.boot["session"]
        await again.connect_ws()
        await again.send(type="join", token=again.boot["token"])
        assert (await again.expect("queue"))["position"] == 1
    finally:
        for customer in (first, second, again):
            await customer.close()


async def test_recording_of_a_customer_who_waited_keeps_every_picture(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    # The session exists from the customer's join; recording starts when both are
    # connected. Pictures encoded for the technician before that must not push the
    # recording's pictures onto one instant (a wait made the video zero seconds).
    customer = Customer(node.base, http, colour="blue")
    await customer.open_link(node.support_link())
    await customer.connect_ws()
    await customer.send(type="join", token=customer.boot["token"])
    await customer.expect("queue")
    session = customer.boot["session"]
    technician = await _console(node, tech_http, "tech-en")
    try:
        offer = await technician.expect("offered", session=session)
        await technician.send(type="accept", entry=offer["entry"])
        await technician.expect("session", session=session, state="waiting")
        customer.pc.addTransceiver(customer.camera, direction="sendonly")
        customer.pc.addTransceiver(ToneTrack(440), direction="sendrecv")
        await customer.negotiate(session, width=640, height=480)
        await technician.take(session)
        await customer.expect("session", state="live", timeout_s=15)
        live_at = time.monotonic()
        await wait_for(lambda: technician.video.frames >= 90, 20, "3 s of pictures")
        await technician.send(type="end", session=session, reason="fixed")
        await customer.expect("ended", session=session)
        live_s = time.monotonic() - live_at
    finally:
        await customer.close()
        await technician.close()

    with av.open(str(node.config.recordings_dir / session / "video.mp4")) as file:
        times = [float(f.time) for f in file.decode(video=0) if f.time is not None]
    with av.open(str(node.config.recordings_dir / session / "video.mp4")) as file:
        audio = sum(f.samples for f in file.decode(audio=0))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) > 30 and min(gaps) > 0.0005, f"pictures stacked: {gaps[:5]}"
    assert abs((times[-1] - times[0]) - live_s) < 1.0, (times[-1] - times[0], live_s)
    assert audio > 48_000, "the recording lost its sound"


async def test_accepting_a_customer_who_just_left_says_so(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    customer = Customer(node.base, http)
    technician = await _console(node, tech_http, "tech-late")
    try:
        await customer.open_link(node.support_link())
        await customer.connect_ws()
        await customer.send(type="join", token=customer.boot["token"])
        offer = await technician.expect("offered", session=customer.boot["session"])
        await customer.send(type="end", session=customer.boot["session"])
        await customer.expect("ended")
        # The technician's click crosses the customer leaving.
        await technician.send(type="accept", entry=offer["entry"], ref="a")
        error = await technician.expect("error", ref="a")
        assert error["reason"] == "The customer has left."
    finally:
        await customer.close()
        await technician.close()


async def test_technician_in_a_direct_session_is_busy_and_offered_after_it(
    node: RunningNode, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    technician = await _console(node, tech_http, "tech-1")
    direct = Customer(node.base, http, colour="red")
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as queued_http:
        queued = Customer(node.base, queued_http)
        try:
            session = await direct.join(node.direct_link("tech-1"))
            await technician.expect("session", session=session)
            await technician.take(session)
            await direct.expect("session", state="live", timeout_s=15)
            await technician.expect("presence", status="busy")

            # A customer queues meanwhile: nobody is free, so they wait.
            await queued.open_link(node.support_link())
            await queued.connect_ws()
            await queued.send(type="join", token=queued.boot["token"])
            assert (await queued.expect("queue"))["position"] == 1
            router = node.node.switchboard.router
            presence = await router.presence("tech-1")
            assert presence is not None and presence.status == "busy"
            assert [e.state for e in await router.entries()] == ["waiting"]

            # The direct session ends: it counts, and the queued customer is
            # offered to the technician now free.
            await direct.send(type="end", session=session, reason="done")
            await technician.expect("ended", session=session)
            offer = await technician.expect("offered", session=queued.boot["session"])
            assert offer["entry"]
            presence = await router.presence("tech-1")
            assert presence is not None and presence.sessions_today == 1
        finally:
            await queued.close()
            await direct.close()
            await technician.close()
