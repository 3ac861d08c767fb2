"""Routing: queues of waiting customers, technician presence, offers, live figures.

Pure logic over the Store protocol (no aiohttp), driven by calls and by `tick()`,
with an injectable clock. Every change of shared state is one atomic Store operation
(`hswap` compare-and-set on a record, `claim` on a technician's offer slot), so
several nodes may run a Router over one Redis and never offer a customer twice.

Distribution: the waiting customers are taken highest priority first, then longest
waiting; each goes to the eligible free technician idle longest (serving its queue,
holding every required skill at the required level, no offer pending). An offer not
accepted within the queue's `offer_timeout_s` goes back to the queue with that
technician tried last, and a technician who misses `max_missed` offers in a row is
set away.

Figures per queue (over the last 30 minutes and since midnight UTC): service level is
the share of customers answered within `target_answer_s` among those answered or
abandoned after that target (those who gave up sooner are not held against it);
average speed of answer; average handle time; abandon rate. The estimated wait of
the customer at position p is p * AHT / N, with AHT over the last 30 minutes and N
the technicians signed in to the queue and not away; with no recent handle time or
no one signed in there is no estimate (None), never a made-up number.

Invitations are entries too. A transfer to a named technician is the customer's
entry with a `target`: only that technician is offered it, and if they decline, miss
it or are not free within `invite_wait_s` it lapses into the queue for anyone. An
expert invitation (`expert_for` names the inviting technician) asks a second
technician into a live session, by name or from a queue with skills; it never counts
as a waiting customer, is offered before them, and lapses (is removed) unanswered.
A customer answered once is not counted as answered again after a transfer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from server.errors import NotFound, ProtocolError
from server.store import Store

__all__ = [
    "Entry",
    "EntryState",
    "Presence",
    "QueueSettings",
    "Router",
    "RoutingEvent",
    "Status",
]

logger = logging.getLogger(__name__)

_ENTRIES = "routing:entries"
_PRESENCE = "routing:presence"
_LOG_KEEP = 20_000
"""Routing events kept per queue for the figures."""
_RECENT_S = 30 * 60.0
_AHT_FRESH_S = 1.0
"""The recent average handle time behind wait estimates is re-read from the event
log at most this often per queue, seconds (the log holds up to `_LOG_KEEP` events;
reading it for every customer's place made each place O(log))."""


class Status(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    WRAP_UP = "wrap-up"
    AWAY = "away"


class EntryState(enum.StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"


@dataclass(frozen=True)
class QueueSettings:
    """One queue's rules, each with its unit."""

    name: str
    target_answer_s: float = 20.0
    """Answered within this counts towards the service level, seconds."""
    wrap_up_s: float = 30.0
    """Time after a session before a technician is offered again, seconds."""
    offer_timeout_s: float = 15.0
    """An offer not accepted in this long goes to the next technician, seconds."""
    max_missed: int = 2
    """Missed offers in a row before a technician is set away."""
    grace_s: float = 120.0
    """A customer who disconnects keeps their place this long, seconds."""
    invite_wait_s: float = 60.0
    """A named transfer or an expert invitation waits this long for an answer,
    seconds."""
    max_waiting: int = 500
    """Customers one queue holds at once."""


@dataclass
class Entry:
    """One waiting customer."""

    id: str
    queue: str
    customer: str
    session: str
    enqueued_at: float
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    state: EntryState = EntryState.WAITING
    offered_to: str = ""
    offered_at: float = 0.0
    tried: list[str] = field(default_factory=list)
    away_until: float = 0.0
    """Disconnected customers keep their place until then (0: present)."""
    target: str = ""
    """Only this technician may be offered the entry (a named transfer or invite)."""
    lapses_at: float = 0.0
    """An invitation not taken by then lapses (0: never)."""
    expert_for: str = ""
    """An expert invitation: the technician who asks for help (not a customer)."""
    answered: bool = False
    """Answered before (a transfer): not counted as answered again."""

    @property
    def is_invite(self) -> bool:
        return bool(self.expert_for)

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def load(cls, text: str) -> Entry:
        data = json.loads(text)
        data["state"] = EntryState(data["state"])
        return cls(**data)


@dataclass
class Presence:
    """One technician's routing state."""

    name: str
    status: Status
    since: float
    skills: dict[str, int] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)
    idle_since: float = 0.0
    missed: int = 0
    auto_answer: bool = False
    wrap_until: float = 0.0
    sessions_today: int = 0
    day: int = 0
    session: str = ""
    answered_at: float = 0.0

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def load(cls, text: str) -> Presence:
        data = json.loads(text)
        data["status"] = Status(data["status"])
        return cls(**data)

    def can_take(self, entry: Entry) -> bool:
        if entry.target:
            return entry.target == self.name
        return (
            entry.queue in self.queues
            and self.name != entry.expert_for
            and all(
                self.skills.get(skill, 0) >= level
                for skill, level in entry.skills.items()
            )
        )


class RoutingEvent(enum.StrEnum):
    OFFERED = "offered"
    """A technician is offered a customer (data: technician, entry)."""
    WITHDRAWN = "withdrawn"
    """An offer ended without an answer (data: technician, entry)."""
    ASSIGNED = "assigned"
    """A technician took a customer (data: technician, entry)."""
    QUEUE = "queue"
    """A queue's waiting list changed (data: queue)."""
    STATUS = "status"
    """A technician's status changed (data: technician, status)."""
    ABANDONED = "abandoned"
    """A customer left the queue before being answered (data: entry)."""
    LAPSED = "lapsed"
    """A named transfer or an expert invitation got no answer (data: entry)."""


Listener = Callable[[RoutingEvent, dict[str, Any]], None]


def _day(now: float) -> int:
    return int(now // 86_400)


class Router:
    def __init__(
        self,
        store: Store,
        queues: Iterable[QueueSettings],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._clock = clock
        self.queues = {q.name: q for q in queues}
        self._listeners: list[Listener] = []
        self._aht: dict[str, tuple[float, float | None]] = {}
        """queue -> (read at, recent average handle time)."""

    def clock(self) -> float:
        return self._clock()

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: RoutingEvent, **data: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, data)
            except Exception:
                logger.exception("routing listener failed on %s", event)

    def settings(self, queue: str) -> QueueSettings:
        found = self.queues.get(queue)
        if found is None:
            raise NotFound(f"There is no queue named {queue!r}.", code="no_queue")
        return found

    # records

    async def entries(self, queue: str | None = None) -> list[Entry]:
        """Waiting customers (of one queue), in the order they will be served."""
        raw = await self._store.hgetall(_ENTRIES)
        found = [Entry.load(text) for text in raw.values()]
        if queue is not None:
            found = [e for e in found if e.queue == queue]
        # Expert invitations first: a customer is live and their technician waits.
        return sorted(
            found, key=lambda e: (not e.is_invite, -e.priority, e.enqueued_at, e.id)
        )

    async def waiting(self, queue: str) -> list[Entry]:
        """The customers waiting in `queue` (not expert invitations), in order."""
        return [e for e in await self.entries(queue) if not e.is_invite]

    async def entry(self, entry_id: str) -> Entry:
        text = await self._store.hget(_ENTRIES, entry_id)
        if text is None:
            raise NotFound("You are no longer in the queue.", code="not_queued")
        return Entry.load(text)

    async def presence(self, name: str) -> Presence | None:
        text = await self._store.hget(_PRESENCE, name)
        return None if text is None else Presence.load(text)

    async def technicians(self) -> list[Presence]:
        raw = await self._store.hgetall(_PRESENCE)
        return sorted((Presence.load(t) for t in raw.values()), key=lambda p: p.name)

    async def _swap_entry(self, old: Entry, new: Entry) -> bool:
        return await self._store.hswap(_ENTRIES, old.id, old.dump(), new.dump())

    async def _swap_presence(self, old: Presence, new: Presence) -> bool:
        return await self._store.hswap(_PRESENCE, old.name, old.dump(), new.dump())

    async def _log(self, queue: str, kind: str, **data: float) -> None:
        record = {"kind": kind, "at": self._clock(), **data}
        await self._store.append(f"routing:log:{queue}", json.dumps(record), _LOG_KEEP)

    async def _update_presence(
        self, name: str, change: Callable[[Presence], Presence | None]
    ) -> Presence:
        """Apply `change` atomically (retrying on a concurrent write)."""
        for _ in range(20):
            current = await self.presence(name)
            if current is None:
                raise NotFound(f"{name} is not signed in to routing.", code="offline")
            updated = change(dataclasses.replace(current))
            if updated is None or updated == current:
                return current
            if await self._swap_presence(current, updated):
                if updated.status != current.status:
                    logger.info(
                        "technician %s: %s -> %s", name, current.status, updated.status
                    )
                    self._emit(
                        RoutingEvent.STATUS, technician=name, status=updated.status
                    )
                return updated
        raise RuntimeError(f"technician {name}: presence kept changing under us")

    # customers

    async def enqueue(
        self,
        queue: str,
        *,
        customer: str,
        session: str,
        skills: dict[str, int] | None = None,
        priority: int = 0,
        entry_id: str | None = None,
    ) -> Entry:
        settings = self.settings(queue)
        waiting = await self.waiting(queue)
        if len(waiting) >= settings.max_waiting:
            raise ProtocolError(
                "This queue is full. Please try again later.", code="busy"
            )
        entry = Entry(
            id=entry_id or secrets.token_hex(6),
            queue=queue,
            customer=customer,
            session=session,
            enqueued_at=self._clock(),
            priority=priority,
            skills=dict(skills or {}),
        )
        await self._store.hset(_ENTRIES, entry.id, entry.dump())
        logger.info(
            "queue %s: entry %s waiting (priority %d)", queue, entry.id, priority
        )
        self._emit(RoutingEvent.QUEUE, queue=queue)
        await self.dispatch()
        return entry

    async def leave(self, entry_id: str, reason: str = "left the queue") -> None:
        """The customer gave up: an abandon in the figures."""
        try:
            entry = await self.entry(entry_id)
        except NotFound:
            return
        if not await self._store.hdel(_ENTRIES, entry.id):
            return
        if not entry.is_invite and not entry.answered:
            await self._log(
                entry.queue, "abandoned", wait_s=self._clock() - entry.enqueued_at
            )
        logger.info("queue %s: entry %s abandoned (%s)", entry.queue, entry.id, reason)
        if entry.state == EntryState.OFFERED:
            await self._free_offer(entry.offered_to, entry.id)
            self._emit(RoutingEvent.WITHDRAWN, technician=entry.offered_to, entry=entry)
        self._emit(RoutingEvent.ABANDONED, entry=entry)
        self._emit(RoutingEvent.QUEUE, queue=entry.queue)

    async def disconnected(self, entry_id: str) -> None:
        """The customer's page went away: their place is kept for the grace period."""
        entry = await self.entry(entry_id)
        updated = dataclasses.replace(
            entry, away_until=self._clock() + self.settings(entry.queue).grace_s
        )
        if entry.state == EntryState.OFFERED:
            await self._free_offer(entry.offered_to, entry.id)
            self._emit(RoutingEvent.WITHDRAWN, technician=entry.offered_to, entry=entry)
            updated.state, updated.offered_to = EntryState.WAITING, ""
        await self._swap_entry(entry, updated)

    async def reconnected(self, entry_id: str) -> Entry:
        entry = await self.entry(entry_id)
        updated = dataclasses.replace(entry, away_until=0.0)
        await self._swap_entry(entry, updated)
        await self.dispatch()
        return updated

    async def position(self, entry_id: str) -> tuple[int, float | None]:
        """1-based place in its queue and the estimated wait in seconds (or None)."""
        entry = await self.entry(entry_id)
        ahead = await self.waiting(entry.queue)
        place = next(i for i, e in enumerate(ahead, 1) if e.id == entry.id)
        return place, await self.estimated_wait(entry.queue, place)

    async def positions(self, queue: str) -> dict[str, tuple[int, float | None, str]]:
        """Every waiting entry's place, estimated wait and named technician (if
        any), read at once."""
        per_place = await self._wait_per_place(queue)
        return {
            entry.id: (place, _wait(place, per_place), entry.target)
            for place, entry in enumerate(await self.entries(queue), 1)
        }

    async def estimated_wait(self, queue: str, place: int) -> float | None:
        return _wait(place, await self._wait_per_place(queue))

    async def _wait_per_place(self, queue: str) -> float | None:
        now = self._clock()
        read_at, aht = self._aht.get(queue, (-_AHT_FRESH_S, None))
        if not 0 <= now - read_at < _AHT_FRESH_S:
            figures = await self._handle_figures(queue, now - _RECENT_S)
            aht = figures.get("aht_s")
            self._aht[queue] = (now, aht)
        staffed = sum(
            1
            for p in await self.technicians()
            if queue in p.queues and p.status != Status.AWAY
        )
        if aht is None or staffed == 0:
            return None
        return aht / staffed

    # technicians

    async def sign_in(
        self,
        name: str,
        *,
        queues: Iterable[str],
        skills: dict[str, int] | None = None,
        auto_answer: bool = False,
        status: Status = Status.AVAILABLE,
    ) -> Presence:
        now = self._clock()
        serving = [q for q in queues if self.settings(q)]
        current = await self.presence(name)
        presence = Presence(
            name=name,
            status=status,
            since=now,
            skills=dict(skills or {}),
            queues=serving,
            idle_since=now,
            auto_answer=auto_answer,
            day=_day(now),
        )
        if current is not None:
            # Signing in again (another tab, a reload) keeps what is under way.
            presence = dataclasses.replace(
                current,
                skills=presence.skills,
                queues=serving,
                auto_answer=auto_answer,
            )
        await self._store.hset(_PRESENCE, name, presence.dump())
        logger.info("technician %s: signed in to %s", name, ", ".join(serving))
        await self.dispatch()
        return presence

    async def sign_out(self, name: str) -> None:
        presence = await self.presence(name)
        if presence is None:
            return
        await self._store.hdel(_PRESENCE, name)
        for entry in await self.entries():
            if entry.state == EntryState.OFFERED and entry.offered_to == name:
                await self._return_to_queue(entry, missed=False)
        logger.info("technician %s: signed out", name)
        await self.dispatch()

    async def set_status(self, name: str, status: Status) -> Presence:
        if status not in (Status.AVAILABLE, Status.AWAY):
            raise ProtocolError(
                "Only 'available' and 'away' can be chosen.", code="bad_message"
            )
        now = self._clock()

        def change(p: Presence) -> Presence | None:
            if p.status in (Status.BUSY,) or p.status == status:
                return None
            p.status, p.since, p.missed = status, now, 0
            if status == Status.AVAILABLE:
                p.idle_since = now
            return p

        presence = await self._update_presence(name, change)
        if presence.status == Status.AWAY:
            for entry in await self.entries():
                if entry.state == EntryState.OFFERED and entry.offered_to == name:
                    await self._return_to_queue(entry, missed=False)
        await self.dispatch()
        return presence

    async def accept(self, name: str, entry_id: str) -> Entry:
        """The technician takes the offered customer: off the queue, technician busy."""
        try:
            entry = await self.entry(entry_id)
        except NotFound:
            raise NotFound("The customer has left.", code="not_queued") from None
        if entry.state != EntryState.OFFERED or entry.offered_to != name:
            raise ProtocolError(
                "This customer is not offered to you.", code="not_offered"
            )
        if not await self._store.hdel(_ENTRIES, entry.id):
            raise NotFound("The customer has left.", code="not_queued")
        now = self._clock()
        await self._free_offer(name, entry.id)

        def change(p: Presence) -> Presence:
            p.status, p.since, p.missed, p.session = Status.BUSY, now, 0, entry.session
            if entry.is_invite:
                return p  # an expert's help is not a handled customer
            today = _day(now)
            p.sessions_today = (p.sessions_today if p.day == today else 0) + 1
            p.day, p.answered_at = today, now
            return p

        await self._update_presence(name, change)
        if not entry.is_invite and not entry.answered:
            await self._log(entry.queue, "answered", wait_s=now - entry.enqueued_at)
        logger.info("queue %s: entry %s answered by %s", entry.queue, entry.id, name)
        self._emit(RoutingEvent.ASSIGNED, technician=name, entry=entry)
        self._emit(RoutingEvent.QUEUE, queue=entry.queue)
        return entry

    async def decline(self, name: str, entry_id: str) -> None:
        entry = await self.entry(entry_id)
        if entry.state == EntryState.OFFERED and entry.offered_to == name:
            await self._return_to_queue(entry, missed=False)
            await self.dispatch()

    async def finish(self, name: str, queue: str) -> Presence:
        """The technician's session ended: record its handle time; wrap-up starts."""
        settings = self.settings(queue)
        now = self._clock()
        current = await self.presence(name)
        if current is not None and current.answered_at:
            await self._log(queue, "handled", handle_s=now - current.answered_at)
            self._aht.pop(queue, None)

        def change(p: Presence) -> Presence:
            p.status, p.since, p.session, p.answered_at = Status.WRAP_UP, now, "", 0.0
            p.wrap_until = now + settings.wrap_up_s
            return p

        return await self._update_presence(name, change)

    async def occupy(self, name: str, session: str) -> None:
        """A technician took a session outside the queues (a direct link): busy,
        so no customer is offered to them meanwhile. An offer already made to them
        goes back to the queue. One who set themselves away stays away (nothing
        is offered to them anyway). A console that reconnects calls this again."""
        now = self._clock()

        def change(p: Presence) -> Presence | None:
            if p.status not in (Status.AVAILABLE, Status.WRAP_UP):
                return None
            p.status, p.since, p.session = Status.BUSY, now, session
            return p

        await self._update_presence(name, change)
        for entry in await self.entries():
            if entry.state == EntryState.OFFERED and entry.offered_to == name:
                await self._return_to_queue(entry, missed=False)
        await self.dispatch()

    async def vacate(self, name: str, session: str) -> None:
        """That session ended: it counts among their sessions today, and they are
        available again at once (no queue, so no wrap-up)."""
        now = self._clock()

        def change(p: Presence) -> Presence | None:
            if p.session != session or p.status != Status.BUSY:
                return None
            today = _day(now)
            p.status, p.since, p.idle_since, p.session = Status.AVAILABLE, now, now, ""
            p.sessions_today = (p.sessions_today if p.day == today else 0) + 1
            p.day = today
            return p

        await self._update_presence(name, change)
        await self.dispatch()

    async def release(self, name: str) -> None:
        """An expert left a session they helped in: available again at once."""
        now = self._clock()

        def change(p: Presence) -> Presence | None:
            if p.status != Status.BUSY:
                return None
            p.status, p.since, p.idle_since, p.session = Status.AVAILABLE, now, now, ""
            return p

        with contextlib.suppress(NotFound):
            await self._update_presence(name, change)
        await self.dispatch()

    async def transfer(self, entry: Entry, queue: str, target: str = "") -> Entry:
        """Put an answered customer in another queue, ahead of newcomers of equal
        priority (they keep the time they first joined), or before one named
        technician, who has `invite_wait_s` to take them."""
        settings = self.settings(queue)
        if target:
            await self.reachable(target)
        moved = dataclasses.replace(
            entry,
            queue=queue,
            state=EntryState.WAITING,
            offered_to="",
            tried=[],
            away_until=0.0,
            target=target,
            lapses_at=self._clock() + settings.invite_wait_s if target else 0.0,
            answered=True,
        )
        await self._store.hset(_ENTRIES, moved.id, moved.dump())
        logger.info(
            "queue %s: entry %s transferred%s",
            queue,
            moved.id,
            f" to {target}" if target else "",
        )
        self._emit(RoutingEvent.QUEUE, queue=queue)
        await self.dispatch()
        return moved

    async def invite_expert(
        self,
        *,
        session: str,
        inviter: str,
        queue: str,
        customer: str = "",
        target: str = "",
        skills: dict[str, int] | None = None,
    ) -> Entry:
        """Ask a second technician into a live session: `target` by name, or anyone
        serving `queue` with `skills`."""
        settings = self.settings(queue)
        if target == inviter:
            raise ProtocolError("You are already in this session.", code="bad_message")
        if target:
            await self.reachable(target)
        now = self._clock()
        entry = Entry(
            id=f"{session}:expert",
            queue=queue,
            customer=customer,
            session=session,
            enqueued_at=now,
            skills=dict(skills or {}),
            target=target,
            lapses_at=now + settings.invite_wait_s,
            expert_for=inviter,
        )
        if await self._store.hget(_ENTRIES, entry.id) is not None:
            raise ProtocolError(
                "An expert is already being invited to this session.",
                code="wrong_state",
            )
        await self._store.hset(_ENTRIES, entry.id, entry.dump())
        logger.info(
            "queue %s: %s invites %s to session %s",
            queue,
            inviter,
            target or "an expert",
            session,
        )
        await self.dispatch()
        return entry

    async def cancel(self, entry_id: str) -> None:
        """Take an invitation back (its session ended): not an abandon."""
        try:
            entry = await self.entry(entry_id)
        except NotFound:
            return
        if not await self._store.hdel(_ENTRIES, entry.id):
            return
        if entry.state == EntryState.OFFERED:
            await self._free_offer(entry.offered_to, entry.id)
            self._emit(RoutingEvent.WITHDRAWN, technician=entry.offered_to, entry=entry)

    async def reachable(self, name: str) -> Presence:
        """`name`'s presence if they are signed in and not away (else an error)."""
        presence = await self.presence(name)
        if presence is None or presence.status == Status.AWAY:
            raise ProtocolError(f"{name} is not available.", code="unavailable")
        return presence

    async def _lapse(self, entry: Entry) -> None:
        """A named transfer or an invitation got no answer in time."""
        if entry.is_invite:
            if not await self._store.hdel(_ENTRIES, entry.id):
                return
        else:
            tried = entry.tried
            if entry.target and entry.target not in tried:
                tried = [*tried, entry.target]
            opened = dataclasses.replace(entry, target="", lapses_at=0.0, tried=tried)
            if not await self._swap_entry(entry, opened):
                return
            self._emit(RoutingEvent.QUEUE, queue=entry.queue)
        logger.info("queue %s: entry %s lapsed unanswered", entry.queue, entry.id)
        self._emit(RoutingEvent.LAPSED, entry=entry)

    # offers

    async def _free_offer(self, name: str, entry_id: str) -> None:
        key = f"routing:offer:{name}"
        if await self._store.get(key) == entry_id:
            await self._store.delete(key)

    async def _return_to_queue(self, entry: Entry, *, missed: bool) -> None:
        name = entry.offered_to
        back = dataclasses.replace(
            entry,
            state=EntryState.WAITING,
            offered_to="",
            tried=[*entry.tried, name] if name not in entry.tried else entry.tried,
        )
        if not await self._swap_entry(entry, back):
            return
        await self._free_offer(name, entry.id)
        self._emit(RoutingEvent.WITHDRAWN, technician=name, entry=back)
        if back.target:
            await self._lapse(back)
        if not missed:
            return
        limit = self.settings(entry.queue).max_missed
        now = self._clock()

        def change(p: Presence) -> Presence:
            p.missed += 1
            if p.missed >= limit and p.status == Status.AVAILABLE:
                p.status, p.since = Status.AWAY, now
            return p

        try:
            presence = await self._update_presence(name, change)
        except NotFound:
            return
        logger.info(
            "technician %s: missed an offer (%d in a row)", name, presence.missed
        )

    async def tick(self) -> None:
        """Time-driven work: offer timeouts, wrap-up ends, expired grace. Then
        dispatch. Call about once a second."""
        now = self._clock()
        for entry in await self.entries():
            settings = self.settings(entry.queue)
            if entry.away_until and entry.away_until <= now:
                await self.leave(entry.id, "did not come back")
            elif (
                entry.state == EntryState.WAITING
                and entry.lapses_at
                and entry.lapses_at <= now
            ):
                await self._lapse(entry)
            elif (
                entry.state == EntryState.OFFERED
                and now - entry.offered_at >= settings.offer_timeout_s
            ):
                await self._return_to_queue(entry, missed=True)
        for presence in await self.technicians():
            if presence.status == Status.WRAP_UP and presence.wrap_until <= now:

                def change(p: Presence) -> Presence | None:
                    if p.status != Status.WRAP_UP:
                        return None
                    p.status, p.since, p.idle_since = Status.AVAILABLE, now, now
                    return p

                await self._update_presence(presence.name, change)
        await self.dispatch()

    async def dispatch(self) -> None:
        """Offer waiting customers to free technicians (see the module docstring)."""
        now = self._clock()
        free = [
            p
            for p in await self.technicians()
            if p.status == Status.AVAILABLE
            and await self._store.get(f"routing:offer:{p.name}") is None
        ]
        free.sort(key=lambda p: (p.idle_since, p.name))
        for entry in await self.entries():
            if not free:
                return
            if entry.state != EntryState.WAITING or entry.away_until:
                continue
            eligible = [p for p in free if p.can_take(entry)]
            if not eligible:
                continue
            # Technicians who already let this customer's offer lapse come last.
            eligible.sort(key=lambda p: p.name in entry.tried)
            chosen = eligible[0]
            slot = f"routing:offer:{chosen.name}"
            ttl = self.settings(entry.queue).offer_timeout_s + 60
            if await self._store.claim(slot, entry.id, ttl) != entry.id:
                free.remove(chosen)
                continue
            offered = dataclasses.replace(
                entry, state=EntryState.OFFERED, offered_to=chosen.name, offered_at=now
            )
            if not await self._swap_entry(entry, offered):
                await self._store.delete(slot)
                continue
            free.remove(chosen)
            logger.info(
                "queue %s: entry %s offered to %s", entry.queue, entry.id, chosen.name
            )
            self._emit(RoutingEvent.OFFERED, technician=chosen.name, entry=offered)
            if chosen.auto_answer:
                await self.accept(chosen.name, entry.id)

    # figures

    async def _events(self, queue: str, since: float) -> list[dict[str, Any]]:
        raw = await self._store.items(f"routing:log:{queue}")
        events = [json.loads(text) for text in raw]
        return [e for e in events if e["at"] >= since]

    async def _handle_figures(
        self, queue: str, since: float
    ) -> dict[str, float | None]:
        handled = [
            e["handle_s"]
            for e in await self._events(queue, since)
            if e["kind"] == "handled"
        ]
        return {"aht_s": round(sum(handled) / len(handled), 1) if handled else None}

    async def figures(self, queue: str) -> dict[str, Any]:
        """The supervisor's live figures for one queue."""
        settings = self.settings(queue)
        now = self._clock()
        waiting = await self.waiting(queue)
        staff = [p for p in await self.technicians() if queue in p.queues]
        out: dict[str, Any] = {
            "queue": queue,
            "waiting": len(waiting),
            "longest_wait_s": round(
                max((now - e.enqueued_at for e in waiting), default=0.0), 1
            ),
            "available": sum(1 for p in staff if p.status == Status.AVAILABLE),
            "busy": sum(1 for p in staff if p.status in (Status.BUSY, Status.WRAP_UP)),
            "target_answer_s": settings.target_answer_s,
        }
        for label, since in (("30m", now - _RECENT_S), ("today", _day(now) * 86_400.0)):
            events = await self._events(queue, since)
            out[label] = _period_figures(events, settings.target_answer_s)
        return out


def _wait(place: int, per_place: float | None) -> float | None:
    return None if per_place is None else round(place * per_place, 1)


def _period_figures(events: list[dict[str, Any]], target_s: float) -> dict[str, Any]:
    answered = [e["wait_s"] for e in events if e["kind"] == "answered"]
    abandoned = [e["wait_s"] for e in events if e["kind"] == "abandoned"]
    handled = [e["handle_s"] for e in events if e["kind"] == "handled"]
    counted = len(answered) + sum(1 for w in abandoned if w > target_s)
    within = sum(1 for w in answered if w <= target_s)
    offered = len(answered) + len(abandoned)

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    return {
        "answered": len(answered),
        "abandoned": len(abandoned),
        "service_level": round(within / counted, 3) if counted else None,
        "asa_s": mean(answered),
        "aht_s": mean(handled),
        "abandon_rate": round(len(abandoned) / offered, 3) if offered else None,
    }
