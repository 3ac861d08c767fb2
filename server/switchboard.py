"""The switchboard: connects routing (queues, offers) to support sessions and consoles.

Routing decides who serves whom; the switchboard carries those decisions to people:
a queued customer learns their place and estimated wait, a technician's consoles get
offers, withdrawals and their presence, and an accepted offer assigns the session so
the technician's console connects. It also turns session ends into wrap-up, records
dispositions, hands customers on (transfer to a queue or a named technician) and
brings experts into live sessions. No aiohttp here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from recorder import Timeline
from server.config import Config
from server.errors import AuthError, NotFound, ProtocolError, StoreUnavailable
from server.messages import Type, encode
from server.routing import Entry, Presence, QueueSettings, Router, RoutingEvent, Status
from server.store import Store
from server.support import SessionState, SupportDesk, SupportSession

__all__ = ["Switchboard", "queue_settings"]

logger = logging.getLogger(__name__)

_TICK_S = 1.0
"""How often routing's timers (offer timeouts, wrap-up, grace) are checked, seconds."""


def queue_settings(config: Config) -> list[QueueSettings]:
    return [
        QueueSettings(
            name,
            target_answer_s=config.answer_target_s,
            wrap_up_s=config.wrap_up_s,
            offer_timeout_s=config.offer_timeout_s,
            max_missed=config.max_missed_offers,
            grace_s=config.queue_grace_s,
            invite_wait_s=config.invite_wait_s,
        )
        for name in config.queues
    ]


class Switchboard:
    def __init__(self, config: Config, store: Store, desk: SupportDesk) -> None:
        self._config = config
        self._desk = desk
        self.router = Router(store, queue_settings(config))
        self.router.listen(self._routing_event)
        desk.closed_listeners.append(self._session_closed)
        desk.expert_left_listeners.append(self._expert_left)
        self._pending: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.figures: dict[str, dict[str, Any]] = {}
        """The latest figures per queue, refreshed every tick (for /metrics)."""
        self.technicians: list[Presence] = []
        self.relay: Callable[[RoutingEvent, dict[str, Any]], None] | None = None
        """Set by the cluster: routing events also go to the other nodes."""

    # lifecycle

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(
            self._tick_forever(), name="routing ticks"
        )

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _tick_forever(self) -> None:
        while True:
            try:
                await self.router.tick()
                await self.refresh_figures()
            except StoreUnavailable:
                logger.debug("routing tick skipped: the store is unavailable")
            except Exception:
                logger.exception("routing tick failed")
            await asyncio.sleep(_TICK_S)

    async def refresh_figures(self) -> None:
        self.figures = {q: await self.router.figures(q) for q in self.router.queues}
        technicians = await self.router.technicians()
        if _team(technicians) != _team(self.technicians):
            # Someone signed in or out, or changed status (on any node).
            await self.tell_team(technicians)
        self.technicians = technicians

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # customers

    async def customer_joined(
        self, session: SupportSession, skills: dict[str, int], priority: int
    ) -> None:
        """A queued session's customer is here: put them in line (or back in it)."""
        if session.state != SessionState.QUEUED:
            return
        try:
            await self.router.reconnected(session.id)
        except NotFound:
            await self.router.enqueue(
                session.queue,
                customer=session.customer,
                session=session.id,
                skills=skills,
                priority=priority,
                entry_id=session.id,
            )
        await self.tell_position(session)

    async def customer_left(self, session: SupportSession) -> None:
        if session.state == SessionState.QUEUED:
            # During a store outage (logged once by the store) the place is kept.
            with contextlib.suppress(NotFound, StoreUnavailable):
                await self.router.disconnected(session.id)

    async def tell_position(self, session: SupportSession) -> None:
        try:
            place, wait = await self.router.position(session.id)
            entry = await self.router.entry(session.id)
        except NotFound:
            return
        await self._tell_place(session, place, wait, entry.target)

    async def _tell_place(
        self, session: SupportSession, place: int, wait: float | None, target: str
    ) -> None:
        await session.tell_customer(
            encode(
                Type.QUEUE,
                session=session.id,
                queue=session.queue,
                position=place,
                estimated_wait_s=wait,
                technician=target or None,
            )
        )

    # technicians

    async def console_joined(
        self, name: str, queues: list[str], skills: dict[str, int]
    ) -> None:
        serving = [q for q in queues if q in self.router.queues] or list(
            self.router.queues
        )
        busy = bool(self._desk.for_technician(name))
        await self.router.sign_in(
            name,
            queues=serving,
            skills=skills,
            status=Status.BUSY if busy else Status.AVAILABLE,
        )
        await self.tell_presence(name)
        await self.tell_queues(name)
        await self.tell_team()
        for entry in await self.router.entries():
            if entry.state == "offered" and entry.offered_to == name:
                await self._tell_offer(name, entry)

    async def occupied(self, name: str, session: SupportSession) -> None:
        """A technician joined a session that no queue gave them (a direct link)."""
        if session.queue:
            return
        with contextlib.suppress(NotFound, StoreUnavailable):
            await self.router.occupy(name, session.id)
            await self.tell_presence(name)

    async def console_left(self, name: str) -> None:
        if name not in self._desk.consoles_online():
            with contextlib.suppress(StoreUnavailable):
                await self.router.sign_out(name)

    async def set_status(self, name: str, status: str) -> None:
        try:
            wanted = Status(status)
        except ValueError:
            raise ProtocolError(
                "Status must be 'available' or 'away'.", code="bad_message"
            ) from None
        await self.router.set_status(name, wanted)
        await self.tell_presence(name)

    async def set_auto_answer(self, name: str, on: bool) -> None:
        presence = await self.router.presence(name)
        if presence is None:
            raise NotFound("You are not signed in to routing.", code="offline")
        await self.router.sign_in(
            name, queues=presence.queues, skills=presence.skills, auto_answer=on
        )
        await self.tell_presence(name)

    async def accept(self, name: str, entry_id: str) -> None:
        await self.router.accept(name, entry_id)

    async def decline(self, name: str, entry_id: str) -> None:
        await self.router.decline(name, entry_id)

    def _queue_for(self, session: SupportSession, queue: str) -> str:
        """The queue named, else the session's, else the first one."""
        queue = queue or session.queue or next(iter(self.router.queues), "")
        self.router.settings(queue)
        return queue

    async def transfer(
        self, name: str, session: SupportSession, queue: str, technician: str = ""
    ) -> None:
        """Hand the customer to a queue or to a named technician; the customer's
        peer stays up, the technician's side is dropped and re-made on answer."""
        if session.technician != name:
            raise AuthError("This session is not yours.", code="forbidden")
        if not queue and not technician:
            raise ProtocolError("Name a queue or a technician.", code="bad_message")
        if technician == name:
            raise ProtocolError("You already have this customer.", code="bad_message")
        queue = self._queue_for(session, queue)
        if technician:
            await self.router.reachable(technician)  # before anything changes
        await session.release_technician(queue, technician)
        await self.router.finish(name, session.queue or queue)
        await self.router.transfer(
            Entry(
                id=session.id,
                queue=queue,
                customer=session.customer,
                session=session.id,
                enqueued_at=session.created,
            ),
            queue,
            target=technician,
        )
        await self.tell_position(session)
        await self.tell_presence(name)

    async def invite(
        self,
        name: str,
        session: SupportSession,
        *,
        technician: str = "",
        queue: str = "",
        skill: str = "",
    ) -> None:
        """The session's technician asks for an expert (by name or queue/skill)."""
        if session.technician != name:
            raise AuthError(
                "Only the session's technician can invite.", code="forbidden"
            )
        if session.state not in (SessionState.LIVE, SessionState.CONNECTING):
            raise ProtocolError(
                "Invite an expert once you are live.", code="wrong_state"
            )
        if session.expert:
            raise ProtocolError(
                f"{session.expert} is already here.", code="wrong_state"
            )
        queue = self._queue_for(session, queue)
        await self.router.invite_expert(
            session=session.id,
            inviter=name,
            queue=queue,
            customer=session.customer,
            target=technician,
            skills={skill: 1} if skill else {},
        )
        session.invite = technician or f"an expert from {queue}" + (
            f" ({skill})" if skill else ""
        )
        session.event("invite", technician=name, to=technician, queue=queue)
        await session.broadcast()

    async def expert_leaves(self, name: str, session: SupportSession) -> None:
        if session.expert != name:
            raise ProtocolError(
                "You are not this session's expert.", code="wrong_state"
            )
        await session.remove_expert(f"{name} left")

    def _expert_left(self, session: SupportSession, name: str) -> None:
        self._spawn(self._release_expert(name))

    async def _release_expert(self, name: str) -> None:
        await self.router.release(name)
        await self.tell_presence(name)

    async def disposition(
        self, name: str, session_id: str, code: str, notes: str
    ) -> None:
        """The technician's closing code and notes, added to the session's timeline."""
        if code not in self._config.dispositions:
            raise ProtocolError(
                f"Disposition must be one of: {', '.join(self._config.dispositions)}.",
                code="bad_message",
            )
        closing = self._desk.sessions.get(session_id)
        if closing is not None and closing.state == SessionState.ENDED:
            # Still finalizing its recording: the timeline already has its end.
            technician, clock_end = closing.technician, closing.clock_at_end
        else:
            technician = self._desk.ended_by_technician.get(session_id, "")
            clock_end = self._desk.ended_clock.get(session_id, 0.0)
        if technician != name:
            raise NotFound("No ended session of yours has that id.")
        path = self._config.recordings_dir / session_id / "timeline.jsonl"
        timeline = Timeline(path, lambda: clock_end)
        try:
            timeline.append("disposition", technician=name, code=code, notes=notes)
        finally:
            timeline.close()
        logger.info("session %s: disposition %s by %s", session_id, code, name)

    async def tell_presence(self, name: str) -> None:
        presence = await self.router.presence(name)
        if presence is None:
            return
        await self._desk.tell_technician(
            name,
            encode(
                Type.PRESENCE,
                status=str(presence.status),
                since=presence.since,
                queues=presence.queues,
                skills=presence.skills,
                auto_answer=presence.auto_answer,
                missed=presence.missed,
                sessions_today=presence.sessions_today,
                dispositions=self._config.dispositions,
                all_queues=list(self.router.queues),
            ),
        )

    async def tell_team(self, technicians: list[Presence] | None = None) -> None:
        """Every console learns who is signed in and free to take a transfer."""
        if technicians is None:
            technicians = await self.router.technicians()
        text = encode(Type.TEAM, technicians=_team(technicians))
        for name in self._desk.consoles_online():
            await self._desk.tell_technician(name, text)

    async def tell_queues(self, name: str) -> None:
        presence = await self.router.presence(name)
        if presence is None:
            return
        now = self.router.clock()
        waiting = [
            {
                "entry": e.id,
                "queue": e.queue,
                "customer": e.customer,
                "priority": e.priority,
                "waited_s": round(now - e.enqueued_at, 1),
                "state": str(e.state),
            }
            for e in await self.router.entries()
            if e.queue in presence.queues and not e.is_invite
        ]
        await self._desk.tell_technician(name, encode(Type.QUEUES, waiting=waiting))

    async def _tell_offer(self, name: str, entry: Entry) -> None:
        timeout = self.router.settings(entry.queue).offer_timeout_s
        await self._desk.tell_technician(
            name,
            encode(
                Type.OFFERED,
                entry=entry.id,
                session=entry.session,
                customer=entry.customer,
                queue=entry.queue,
                waited_s=round(self.router.clock() - entry.enqueued_at, 1),
                timeout_s=timeout,
                expert_for=entry.expert_for or None,
                transfer=entry.answered,
            ),
        )

    # events

    def _routing_event(self, event: RoutingEvent, data: dict[str, Any]) -> None:
        self._spawn(self._handle(event, data))
        if self.relay is not None:
            self.relay(event, data)

    def handle_event(self, event: RoutingEvent, data: dict[str, Any]) -> None:
        """A routing event from another node: tell this node's people."""
        self._spawn(self._handle(event, data))

    async def _handle(self, event: RoutingEvent, data: dict[str, Any]) -> None:
        if event == RoutingEvent.OFFERED:
            await self._tell_offer(data["technician"], data["entry"])
        elif event == RoutingEvent.WITHDRAWN:
            await self._desk.tell_technician(
                data["technician"], encode(Type.WITHDRAWN, entry=data["entry"].id)
            )
        elif event == RoutingEvent.ASSIGNED:
            entry: Entry = data["entry"]
            session = self._desk.sessions.get(entry.session)
            if entry.is_invite:
                await self._expert_arrives(data["technician"], session)
                return
            if session is None:
                return
            await session.assign(data["technician"])
            await self._desk.notify_console(session)
        elif event == RoutingEvent.LAPSED:
            await self._lapsed(data["entry"])
        elif event == RoutingEvent.STATUS:
            await self.tell_presence(data["technician"])
            await self.tell_team()
        elif event == RoutingEvent.QUEUE:
            queue = data["queue"]
            places = await self.router.positions(queue)  # one read for everyone
            for session in list(self._desk.sessions.values()):
                if session.state == SessionState.QUEUED and session.id in places:
                    await self._tell_place(session, *places[session.id])
            for name in self._desk.consoles_online():
                await self.tell_queues(name)
        elif event == RoutingEvent.ABANDONED:
            session = self._desk.sessions.get(data["entry"].session)
            if session is not None and session.state == SessionState.QUEUED:
                await session.end("left the queue")

    async def _expert_arrives(self, name: str, session: SupportSession | None) -> None:
        try:
            if session is None:
                raise NotFound("The session has ended.", code="ended")
            await session.add_expert(name)
        except (NotFound, ProtocolError) as exc:
            # The session ended (or changed) while the invitation was answered.
            await self._desk.tell_technician(
                name, encode(Type.ERROR, code=exc.code, reason=exc.reason)
            )
            await self._release_expert(name)
            return
        # The technician heard of it from the session; the expert's console connects.
        await self._desk.tell_technician(
            name, encode(Type.SESSION, **session.summary())
        )

    async def _lapsed(self, entry: Entry) -> None:
        session = self._desk.sessions.get(entry.session)
        if session is None or not entry.is_invite:
            return
        session.invite = ""
        who = entry.target or "No expert"
        session.event("invite_lapsed", to=entry.target, queue=entry.queue)
        await self._desk.tell_technician(
            entry.expert_for,
            encode(
                Type.ERROR,
                code="no_answer",
                reason=f"{who} did not answer the invitation.",
                session=session.id,
            ),
        )
        await session.broadcast()

    def _session_closed(self, session: SupportSession) -> None:
        self._spawn(self._after_session(session))

    async def _after_session(self, session: SupportSession) -> None:
        await self.router.cancel(f"{session.id}:expert")
        if session.expert:
            await self._release_expert(session.expert)
        if not session.queue:
            if session.technician:
                with contextlib.suppress(NotFound, StoreUnavailable):
                    await self.router.vacate(session.technician, session.id)
                    await self.tell_presence(session.technician)
            return
        with contextlib.suppress(NotFound, StoreUnavailable):
            await self.router.leave(session.id, session.end_reason)
        if session.technician and session.was_live:
            with contextlib.suppress(NotFound, StoreUnavailable):
                await self.router.finish(session.technician, session.queue)


def _team(technicians: list[Presence]) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "status": str(p.status), "queues": p.queues}
        for p in technicians
    ]
