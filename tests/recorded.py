"""Real recordings made through a running node, for the library's tests."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from server.messages import Program as ProgramMessage
from server.rooms import DEMO_ROOM, RoomRole
from tests.conftest import RunningNode
from tests.peers import Customer, Technician, wait_for

__all__ = ["jar", "record_room", "record_support_session"]


class _Quiet:
    """A room member's channel that nobody reads (the test drives the room)."""

    label = "test-presenter"

    async def send(self, text: str) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        return None


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def record_support_session(node: RunningNode) -> tuple[str, float, str]:
    """A ~5 s live session with a snapshot at ~2.5 s, ended by the customer, with a
    disposition after.

    Returns the session id, its live seconds and the customer's token.
    """
    async with jar() as http, jar() as tech_http:
        technician = Technician(node.base, tech_http)
        customer = Customer(node.base, http, colour="red")
        try:
            await technician.sign_in(node.login_link("tech-1"))
            await technician.join()
            session = await customer.join(node.direct_link("tech-1"))
            await technician.expect("session", session=session)
            await technician.take(session)
            await customer.expect("session", state="live", timeout_s=15)
            started = time.monotonic()
            await wait_for(lambda: time.monotonic() - started > 2.5, 8, "2.5 s live")
            await technician.send(type="snapshot", session=session, ref="s1")
            await technician.expect("ok", ref="s1")
            await wait_for(lambda: time.monotonic() - started > 5.0, 8, "5 s live")
            await customer.send(type="end", session=session, reason="done")
            await technician.expect("ended", session=session)
            await technician.send(
                type="disposition",
                session=session,
                code="resolved",
                notes="replaced the group gasket",
                ref="d1",
            )
            await technician.expect("ok", ref="d1")
            return session, time.monotonic() - started, customer.boot["token"]
        finally:
            await customer.close()
            await technician.close()


async def record_room(node: RunningNode) -> str:
    """The demo room recorded ~4 s with one switch, wide to close, at ~2 s."""
    room = node.node.rooms.open_demo()
    try:
        presenter = room.enter(RoomRole.PRESENTER, "pat", _Quiet())
        await wait_for(lambda: room.program.live("wide"), 5, "wide camera live")
        room.start_recording("test")
        await asyncio.sleep(2.0)  # media time before the switch
        room.direct(
            presenter, ProgramMessage(room=DEMO_ROOM, layout="single", main="close")
        )
        await asyncio.sleep(2.0)
        await room.stop_recording("test done")
        return room.last_recording
    finally:
        await room.end("test done")
