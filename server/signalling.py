"""The websocket endpoint: typed messages in, one handler per type, errors as values.

A socket belongs to one participant: a customer (entering with the participant token
their link gave them) or a signed-in technician's console (the staff cookie). Every
message is parsed by `server.messages.parse` first; a `TaplineError` becomes one
``error`` message with its code and the socket stays open; a surprise is logged with
its traceback and answered with ``internal``. When the socket closes, for any reason,
the participant's peers are freed and the session's rejoin grace starts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from server.config import Config
from server.errors import AuthError, LinkError, ProtocolError, TaplineError
from server.limits import AddressLimits, FloodGuard, TokenBucket
from server.links import Grant, Kind, LinkSigner
from server.messages import (
    ROOM_MESSAGES,
    TOOL_MESSAGES,
    Accept,
    AutoAnswer,
    Candidate,
    ClientMessage,
    Decline,
    Disposition,
    End,
    Enter,
    Invite,
    Join,
    Leave,
    Offer,
    SetStatus,
    Studio,
    Transfer,
    Type,
    encode,
    parse,
)
from server.rooms import Member, RoomDirectory
from server.support import Channel, Role, SessionState, SupportDesk, SupportSession
from server.switchboard import Switchboard

__all__ = ["Signalling"]

logger = logging.getLogger(__name__)

_SEND_TIMEOUT_S = 10.0
"""A socket that cannot take a message within this long is closed, seconds."""


class WsChannel:
    """A websocket seen as the domain's `Channel`.

    What waits to be written to a client is bounded: past `max_buffer_bytes` the
    client is not reading, and its connection is cut (no close frame could reach
    it either); a send that waits longer than `_SEND_TIMEOUT_S` closes it too.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        label: str,
        transport: asyncio.BaseTransport | None = None,
        max_buffer_bytes: int = 1024 * 1024,
    ) -> None:
        self.ws = ws
        self.label = label
        self._transport = transport
        self._max_buffer = max_buffer_bytes

    async def send(self, text: str) -> None:
        if self.ws.closed:
            return
        transport = self._transport
        if isinstance(transport, asyncio.WriteTransport) and (
            transport.get_write_buffer_size() + len(text) > self._max_buffer
        ):
            logger.info(
                "socket %s: over %d bytes unread; disconnecting it",
                self.label,
                self._max_buffer,
            )
            transport.abort()
            return
        try:
            await asyncio.wait_for(self.ws.send_str(text), _SEND_TIMEOUT_S)
        except TimeoutError:
            logger.info("socket %s: not reading; closing it", self.label)
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow")

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


class RemoteSessions(Protocol):
    """Sessions hosted on other nodes (the cluster relays a console's signalling)."""

    def is_remote(self, session_id: str) -> bool: ...

    async def host(self, session_id: str) -> None:
        """Refuse (`moved`) a session whose media lives on another node."""

    async def offer(self, name: str, channel: Channel, message: Offer) -> str: ...

    async def end(
        self, name: str, channel: Channel, session_id: str, why: str
    ) -> None: ...

    async def console(
        self, name: str, channel: Channel, message: Transfer | Disposition
    ) -> None: ...

    async def tool(self, name: str, raw: str) -> dict[str, Any] | None:
        """A technician's tool message (as received) for a session elsewhere."""

    async def left(self, channel: Channel, reason: str) -> None: ...


@dataclass
class _Participant:
    channel: WsChannel
    role: Role | None = None
    name: str = ""
    grant: Grant | None = None
    sessions: dict[str, SupportSession] = field(default_factory=dict)
    member: Member | None = None
    """In a demo room: the room's view of this participant."""


class Signalling:
    def __init__(
        self,
        config: Config,
        signer: LinkSigner,
        desk: SupportDesk,
        switchboard: Switchboard,
        staff_cookie: str,
        rooms: RoomDirectory | None = None,
    ) -> None:
        self._config = config
        self._signer = signer
        self._desk = desk
        self._switchboard = switchboard
        self._staff_cookie = staff_cookie
        self._rooms = rooms
        self.sockets: set[web.WebSocketResponse] = set()
        self._addresses = AddressLimits(
            config.address_messages_per_s, config.address_burst
        )
        self.remote: RemoteSessions | None = None
        """Set with Redis: consoles reach sessions on other nodes through it."""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=self._config.heartbeat_s,
            max_msg_size=self._config.max_message_bytes,
        )
        await ws.prepare(request)
        self.sockets.add(ws)
        label = f"ws-{secrets.token_hex(3)}"
        channel = WsChannel(
            ws, label, request.transport, self._config.max_send_buffer_bytes
        )
        who = _Participant(channel)
        reason = "closed"
        try:
            reason = await self._serve(request, ws, who)
        except Exception:
            logger.exception("socket %s: failed", who.channel.label)
            reason = "server error"
        finally:
            self.sockets.discard(ws)
            await self._left(who, reason)
            if not ws.closed:
                await ws.close()
        return ws

    async def _serve(
        self, request: web.Request, ws: web.WebSocketResponse, who: _Participant
    ) -> str:
        config = self._config
        guard = FloodGuard(
            TokenBucket(config.ws_messages_per_s, config.ws_burst),
            self._addresses,
            request.remote or "",
            config.flood_strikes,
        )
        async for msg in ws:
            data = msg.type in (WSMsgType.TEXT, WSMsgType.BINARY)
            verdict = guard.check() if data else FloodGuard.OK
            if verdict == FloodGuard.CLOSE:
                logger.info("socket %s: flooding; closing it", who.channel.label)
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"flooding")
                return "flooding"
            if verdict == FloodGuard.REFUSE:
                if guard.refused == 1:
                    await who.channel.send(
                        encode(
                            Type.ERROR,
                            code="rate_limited",
                            reason="Too many messages; slow down.",
                        )
                    )
                continue
            if msg.type == WSMsgType.TEXT:
                await self._receive(request, who, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await who.channel.send(
                    encode(Type.ERROR, code="bad_message", reason="Send JSON text.")
                )
            elif msg.type == WSMsgType.ERROR:
                exc = ws.exception()
                logger.info("socket %s: %s", who.channel.label, exc)
                return f"connection error: {exc}"
        if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            return "message too large"
        return "left" if ws.close_code in (1000, 1001) else "connection lost"

    async def _receive(self, request: web.Request, who: _Participant, raw: str) -> None:
        ref: str | None = None
        try:
            message = parse(
                raw,
                max_bytes=self._config.max_message_bytes,
                max_sdp_bytes=self._config.max_sdp_bytes,
            )
            ref = message.ref
            if isinstance(message, ROOM_MESSAGES):
                await self._room(request, who, message)
            elif isinstance(message, Join):
                await self._join(request, who, message)
            elif who.role is None:
                raise ProtocolError("Send 'join' first.", code="wrong_state")
            elif isinstance(message, End) and self._is_expert(who, message.session):
                await self._leave(who, self._session_of(who, message.session))
            elif isinstance(message, Offer):
                await self._offer(who, message)
            elif isinstance(message, Candidate):
                session = self._session_of(who, message.session)
                await session.candidate(
                    who.role, message.candidate, message.mid, message.index
                )
            elif isinstance(message, End) and self._remote(who, message.session):
                assert self.remote is not None
                await self.remote.end(
                    who.name, who.channel, message.session, message.reason
                )
            elif isinstance(message, End):
                session = self._session_of(who, message.session)
                await session.end(f"ended by {who.role}: {message.reason}")
            elif isinstance(message, TOOL_MESSAGES) and self._remote(
                who, message.session
            ):
                assert self.remote is not None
                reply = await self.remote.tool(who.name, raw)
                if reply is not None:
                    await who.channel.send(encode(Type.OK, ref=message.ref, **reply))
            elif isinstance(message, TOOL_MESSAGES):
                session = self._session_of(who, message.session)
                reply = await session.tools.handle(who.role, who.name, message)
                if reply is not None:
                    await who.channel.send(encode(Type.OK, ref=message.ref, **reply))
            elif who.role != Role.TECHNICIAN:
                raise AuthError("Only technicians can do that.", code="forbidden")
            else:
                await self._console(who, message)
        except TaplineError as exc:
            wire = exc.to_wire()
            wire.setdefault("ref", ref)
            await who.channel.send(encode(Type.ERROR, **_without_type(wire)))
        except Exception:
            logger.exception("socket %s: handler failed", who.channel.label)
            await who.channel.send(
                encode(
                    Type.ERROR,
                    code="internal",
                    reason="Something went wrong on our side.",
                    ref=ref,
                )
            )

    async def _console(self, who: _Participant, message: ClientMessage) -> None:
        """A technician's routing and wrap-up messages."""
        board = self._switchboard
        if isinstance(message, (Transfer, Disposition)) and self._remote(
            who, message.session
        ):
            assert self.remote is not None
            await self.remote.console(who.name, who.channel, message)
        elif isinstance(message, SetStatus):
            await board.set_status(who.name, message.status)
        elif isinstance(message, Accept):
            await board.accept(who.name, message.entry)
        elif isinstance(message, Decline):
            await board.decline(who.name, message.entry)
        elif isinstance(message, AutoAnswer):
            await board.set_auto_answer(who.name, message.on)
        elif isinstance(message, Transfer):
            session = self._session_of(who, message.session)
            await board.transfer(who.name, session, message.queue, message.technician)
            who.sessions.pop(session.id, None)
        elif isinstance(message, Invite):
            session = self._session_of(who, message.session)
            await board.invite(
                who.name,
                session,
                technician=message.technician,
                queue=message.queue,
                skill=message.skill,
            )
        elif isinstance(message, Leave):
            await self._leave(who, self._session_of(who, message.session))
        elif isinstance(message, Disposition):
            await board.disposition(
                who.name, message.session, message.code, message.notes
            )
        else:
            return
        await who.channel.send(encode(Type.OK, ref=message.ref))

    async def _join(self, request: web.Request, who: _Participant, msg: Join) -> None:
        if who.role is not None:
            raise ProtocolError("Already joined.", code="wrong_state")
        if msg.token:
            grant = await self._participant(msg.token)
            if grant.get("room"):
                raise AuthError("This is not a support link's token.", code="forbidden")
            if self.remote is not None:
                await self.remote.host(grant.get("sid"))
            session = self._desk.open(
                grant.get("sid"),
                technician=grant.get("tech"),
                customer=grant.get("pid"),
                link_id=grant.get("link"),
                queue=grant.get("queue"),
            )
            who.role, who.name, who.grant = Role.CUSTOMER, grant.get("pid"), grant
            who.sessions[session.id] = session
            await who.channel.send(
                encode(Type.WELCOME, role="customer", session=session.id, ref=msg.ref)
            )
            await session.attach(Role.CUSTOMER, who.channel)
            if session.state == SessionState.QUEUED:
                skills = grant.scope.get("skills", {})
                priority = grant.scope.get("prio", 0)
                await self._switchboard.customer_joined(
                    session,
                    skills if isinstance(skills, dict) else {},
                    priority if isinstance(priority, int) else 0,
                )
            else:
                await self._desk.notify_console(session)
            return

        cookie = request.cookies.get(self._staff_cookie, "")
        if not cookie:
            raise AuthError("Sign in first.", code="not_signed_in")
        grant = await self._signer.check(cookie, Kind.STAFF)
        if grant.get("role") not in ("technician", "admin", "supervisor"):
            raise AuthError("Your role cannot take customers.", code="forbidden")
        who.role, who.name, who.grant = Role.TECHNICIAN, grant.get("name"), grant
        await who.channel.send(
            encode(Type.WELCOME, role="technician", name=who.name, ref=msg.ref)
        )
        await self._desk.console_joined(who.name, who.channel)
        queues = grant.scope.get("queues", [])
        skills = grant.scope.get("skills", {})
        await self._switchboard.console_joined(
            who.name,
            [str(q) for q in queues] if isinstance(queues, list) else [],
            skills if isinstance(skills, dict) else {},
        )

    async def _participant(self, token: str) -> Grant:
        """A customer's participant grant; an expired one still rejoins its session.

        The participant token lives as long as the link did. A customer whose
        network blipped after that comes back to a session that is still open:
        the open session, not the link, is what lets them in. A revoked link
        lets no one back in.
        """
        try:
            grant = await self._signer.check(token, Kind.PARTICIPANT)
        except LinkError as exc:
            if exc.code != "expired":
                raise
            grant = await self._signer.check(token, Kind.PARTICIPANT, expired_ok=True)
            if grant.get("sid") not in self._desk.sessions:
                raise
            logger.info("session %s: rejoin after its link expired", grant.get("sid"))
        if not grant.get("sid"):
            raise AuthError("This is not a support session token.", code="forbidden")
        link = grant.get("link")
        if link and await self._signer.revoked(link):
            raise LinkError(
                "This link was withdrawn. Ask for a new one.", code="revoked"
            )
        return grant

    def _is_expert(self, who: _Participant, session_id: str) -> bool:
        session = self._desk.sessions.get(session_id)
        return session is not None and _seat(who, session) == Role.EXPERT

    async def _leave(self, who: _Participant, session: SupportSession) -> None:
        """The expert leaves; the session goes on without them."""
        await self._switchboard.expert_leaves(who.name, session)
        who.sessions.pop(session.id, None)

    def _session_of(self, who: _Participant, session_id: str) -> SupportSession:
        session = who.sessions.get(session_id)
        if session is not None:
            if who.role == Role.CUSTOMER and not session.holds(who.role, who.channel):
                raise ProtocolError(
                    "This session continues in another tab or window.",
                    code="replaced",
                )
            return session
        session = self._desk.get(session_id)
        if who.role != Role.TECHNICIAN or session.role_of(who.name) is None:
            raise AuthError("This session is not yours.", code="forbidden")
        return session

    def _remote(self, who: _Participant, session_id: str) -> bool:
        return (
            self.remote is not None
            and who.role == Role.TECHNICIAN
            and session_id not in who.sessions
            and self.remote.is_remote(session_id)
        )

    async def _offer(self, who: _Participant, msg: Offer) -> None:
        assert who.role is not None
        if self._remote(who, msg.session):
            assert self.remote is not None
            answer = await self.remote.offer(who.name, who.channel, msg)
            await who.channel.send(
                encode(Type.ANSWER, session=msg.session, sdp=answer, ref=msg.ref)
            )
            return
        session = self._session_of(who, msg.session)
        role = _seat(who, session)
        if msg.session not in who.sessions:
            who.sessions[session.id] = session
            await session.attach(role, who.channel)
            if role == Role.TECHNICIAN:
                await self._switchboard.occupied(who.name, session)
        answer = await session.offer(role, msg.sdp, msg.width, msg.height)
        await who.channel.send(
            encode(Type.ANSWER, session=session.id, sdp=answer, ref=msg.ref)
        )

    async def _room(
        self, request: web.Request, who: _Participant, message: ClientMessage
    ) -> None:
        """Demo rooms: enter as viewer or camera, direct a studio, or act inside."""
        rooms = self._rooms
        if rooms is None:
            raise ProtocolError("This node hosts no demo rooms.", code="wrong_state")
        entering = isinstance(message, (Enter, Studio))
        if entering and (who.role is not None or who.member is not None):
            raise ProtocolError("Already joined.", code="wrong_state")
        if isinstance(message, Enter):
            grant = await self._signer.check(message.token, Kind.PARTICIPANT)
            if not grant.get("room"):
                raise AuthError("This is not a demo room token.", code="forbidden")
            who.member = await rooms.enter(grant, who.channel, message.ref)
        elif isinstance(message, Studio):
            cookie = request.cookies.get(self._staff_cookie, "")
            if not cookie:
                raise AuthError("Sign in first.", code="not_signed_in")
            grant = await self._signer.check(cookie, Kind.STAFF)
            who.member = await rooms.studio(
                grant,
                message.room,
                message.title,
                who.channel,
                message.ref,
                queue=message.queue,
            )
        elif who.member is None:
            raise ProtocolError("Enter a room first.", code="wrong_state")
        else:
            await rooms.handle(who.member, message)

    async def _left(self, who: _Participant, reason: str) -> None:
        if who.member is not None:
            await who.member.room.leave(who.member, reason)
        if who.role == Role.TECHNICIAN and self.remote is not None:
            await self.remote.left(who.channel, reason)
        if who.role == Role.TECHNICIAN:
            self._desk.console_left(who.name, who.channel)
            await self._switchboard.console_left(who.name)
        if who.role is None:
            return
        for session in who.sessions.values():
            await session.detach(_seat(who, session), who.channel, reason)
            if who.role == Role.CUSTOMER:
                await self._switchboard.customer_left(session)

    async def close_all(self) -> None:
        """Tell every open socket the server is going away."""
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                for ws in list(self.sockets)
            ),
            return_exceptions=True,
        )


def _seat(who: _Participant, session: SupportSession) -> Role:
    """The participant's seat in `session`: a console may be its expert."""
    assert who.role is not None
    if who.role == Role.TECHNICIAN:
        return session.role_of(who.name) or who.role
    return who.role


def _without_type(wire: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in wire.items() if k != "type"}
