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

from aiohttp import WSCloseCode, WSMsgType, web

from server.config import Config
from server.errors import AuthError, ProtocolError, TaplineError
from server.links import Grant, Kind, LinkSigner
from server.messages import (
    ROOM_MESSAGES,
    TOOL_MESSAGES,
    Accept,
    AutoAnswer,
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
from server.support import Role, SessionState, SupportDesk, SupportSession
from server.switchboard import Switchboard

__all__ = ["Signalling"]

logger = logging.getLogger(__name__)

_SEND_TIMEOUT_S = 10.0
"""A socket that cannot take a message within this long is closed, seconds."""


class WsChannel:
    """A websocket seen as the domain's `Channel`."""

    def __init__(self, ws: web.WebSocketResponse, label: str) -> None:
        self.ws = ws
        self.label = label

    async def send(self, text: str) -> None:
        if self.ws.closed:
            return
        try:
            await asyncio.wait_for(self.ws.send_str(text), _SEND_TIMEOUT_S)
        except TimeoutError:
            logger.info("socket %s: not reading; closing it", self.label)
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow")

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


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

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=self._config.heartbeat_s,
            max_msg_size=self._config.max_message_bytes,
        )
        await ws.prepare(request)
        self.sockets.add(ws)
        who = _Participant(WsChannel(ws, f"ws-{secrets.token_hex(3)}"))
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
        async for msg in ws:
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
            elif isinstance(message, End):
                session = self._session_of(who, message.session)
                await session.end(f"ended by {who.role}: {message.reason}")
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
        if isinstance(message, SetStatus):
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
            grant = await self._signer.check(msg.token, Kind.PARTICIPANT)
            if not grant.get("sid") or grant.get("room"):
                raise AuthError("This is not a support link's token.", code="forbidden")
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
            return session
        session = self._desk.get(session_id)
        if who.role != Role.TECHNICIAN or session.role_of(who.name) is None:
            raise AuthError("This session is not yours.", code="forbidden")
        return session

    async def _offer(self, who: _Participant, msg: Offer) -> None:
        assert who.role is not None
        session = self._session_of(who, msg.session)
        role = _seat(who, session)
        if msg.session not in who.sessions:
            who.sessions[session.id] = session
            await session.attach(role, who.channel)
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
