"""Several nodes on one Redis: heartbeats, the session directory, the bus, node death.

Each node writes a heartbeat (`cluster:alive:<node>`, expiring after
`node_timeout_s`) with its public URL, its load (sessions + websockets), the
technicians whose consoles it holds and the sessions it hosts; the same record
stays in `cluster:nodes` after the heartbeat lapses, so others know what a dead
node held.

- **Placement.** A support session's media lives on one node. The directory
  (`cluster:sessions`, session -> node) is written once, by compare-and-set, when
  the customer first opens the link: the least-loaded live node gets it (ties go
  to the node that took the request). A customer who reached another node is
  redirected to the media node's public URL before anything is bound to their
  device.
- **Relay.** A technician's console stays on whatever node it reached. Its
  signalling for a session hosted elsewhere (offer, end, leaving) is relayed over
  the bus to the media node, which answers over the bus; what the session says to
  the technician comes back the same way to the console's socket. Media flows
  directly between the browser and the media node (its ICE candidates are in the
  answer).
- **Bus.** Redis pub/sub: `cluster:all` carries routing events (each node tells its
  own consoles and queued customers) and console messages; `cluster:node:<id>`
  carries requests, replies and deliveries for one node.
- **Rooms.** A demo room lives on the node its studio opened it on; heartbeats list
  them, and a room link opened elsewhere is redirected there.
- **Node death.** A node whose heartbeat lapsed is reaped by exactly one survivor
  (a claim): technicians whose only consoles were there are signed out (their
  offers go back to the queue), customers waiting there keep their place for the
  queue grace and get it back when they return on another node, technicians busy
  with a session there go to wrap-up, its rooms are marked ended with the reason,
  and its directory entries are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from server.config import Config
from server.errors import (
    AuthError,
    LinkError,
    NotFound,
    ProtocolError,
    StoreUnavailable,
    TaplineError,
)
from server.messages import (
    TOOL_MESSAGES,
    Disposition,
    Offer,
    Transfer,
    Type,
    encode,
    parse,
)
from server.routing import Entry, Presence, RoutingEvent, Status
from server.store.redis import RedisStore
from server.support import (
    Channel,
    Role,
    SessionState,
    SupportDesk,
    SupportSession,
)
from server.switchboard import Switchboard

__all__ = ["Cluster", "ClusterMismatch", "NodeInfo", "secret_fingerprint"]

logger = logging.getLogger(__name__)

_NODES = "cluster:nodes"
_SESSIONS = "cluster:sessions"
_ALL = "cluster:all"
REQUEST_TIMEOUT_S = 10.0
"""Longest wait for another node to answer a relayed request, seconds."""
STOP_TIMEOUT_S = 5.0
"""Longest wait for the cluster's tasks to end on shutdown, seconds."""
_REAP_CLAIM_S = 60.0
"""A reaped node is not reaped again for this long, seconds."""


class ClusterMismatch(RuntimeError):
    """This node cannot join the others on this Redis (a different link secret)."""


def secret_fingerprint(secret: str) -> str:
    """Names the link secret without revealing it, to compare nodes."""
    digest = hmac.new(secret.encode(), b"tapline cluster secret", "sha256")
    return digest.hexdigest()[:16]


@dataclass
class NodeInfo:
    """What one node says about itself with each heartbeat."""

    id: str
    url: str
    load: int = 0
    consoles: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    rooms: list[str] = field(default_factory=list)
    secret: str = ""
    """A fingerprint of the node's link secret: nodes on one Redis need the same."""

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def load_from(cls, text: str) -> NodeInfo:
        return cls(**json.loads(text))


class RemoteChannel:
    """A socket on another node, seen by a session on this one."""

    def __init__(self, cluster: Cluster, node: str, socket: str) -> None:
        self.label = f"{node}/{socket}"
        self._cluster = cluster
        self._node = node
        self._socket = socket

    async def send(self, text: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._cluster.send_to(
                self._node, "deliver", socket=self._socket, text=text
            )

    async def close(self, code: int, reason: str) -> None:
        """The console's socket stays open: it serves other sessions."""


def _event_wire(event: RoutingEvent, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value.dump() if isinstance(value, Entry) else str(value)
    return {"event": str(event), "data": out}


def _event_from_wire(wire: dict[str, Any]) -> tuple[RoutingEvent, dict[str, Any]]:
    data: dict[str, Any] = dict(wire["data"])
    if "entry" in data:
        data["entry"] = Entry.load(data["entry"])
    if "status" in data:
        data["status"] = Status(data["status"])
    return RoutingEvent(wire["event"]), data


class Cluster:
    def __init__(
        self,
        config: Config,
        store: RedisStore,
        desk: SupportDesk,
        switchboard: Switchboard,
        load: Callable[[], int],
        rooms: Callable[[], list[str]] = list,
        secret: str = "",
    ) -> None:
        self.id = f"n-{secrets.token_hex(4)}"
        self._secret = secret_fingerprint(secret) if secret else ""
        self._config = config
        self._store = store
        self._desk = desk
        self._board = switchboard
        self._load = load
        self._rooms = rooms
        self.nodes: dict[str, NodeInfo] = {}
        """Live nodes as of the last heartbeat, this one included."""
        self._tasks: list[asyncio.Task[None]] = []
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._remote_channels: dict[tuple[str, str], RemoteChannel] = {}
        """On a media node: the consoles of other nodes attached to its sessions."""
        self._sockets: dict[str, Channel] = {}
        """On a console's node: its sockets that joined sessions elsewhere."""
        self._relayed: dict[str, dict[str, str]] = {}
        """socket label -> {session: media node} for relayed sessions."""
        self._placed: dict[str, int] = {}
        """Sessions this node placed, per node, since its last heartbeat."""
        self._reap_after = 0.0
        """No reaping before this (monotonic): after an outage, others beat first."""
        self._presence: dict[str, Presence] = {}
        self._entries: dict[str, Entry] = {}
        """What this node's people hold in routing, to put back if Redis lost it."""
        self._remembering = False
        switchboard.relay = self._publish_event
        desk.console_relays.append(self._relay_console)
        desk.closed_listeners.append(self._session_closed)
        store.up_listeners.append(lambda: self._spawn(self.restore()))

    # lifecycle

    async def start(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._check_secret()
            await self.beat()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._beat_forever(), name="cluster heartbeat"),
            loop.create_task(self._listen_forever(), name="cluster bus"),
        ]
        logger.info("node %s: joined the cluster at %s", self.id, self._config.origin)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            for task in stuck:
                logger.warning("node %s: %s did not stop", self.id, task.get_name())
        for future in self._replies.values():
            future.cancel()
        with contextlib.suppress(StoreUnavailable):
            await self._store.delete(f"cluster:alive:{self.id}")
            await self._store.hdel(_NODES, self.id)
        logger.info("node %s: left the cluster", self.id)

    async def _check_secret(self) -> None:
        """Refuse to join live nodes that sign links with another secret: their
        links, sign-ins and redirects would be 'not valid' here, and ours there."""
        for node_id in await self._store.hgetall(_NODES):
            text = await self._store.get(f"cluster:alive:{node_id}")
            if text is None:
                continue
            other = NodeInfo.load_from(text)
            if other.secret and self._secret and other.secret != self._secret:
                raise ClusterMismatch(
                    f"Node {other.id} ({other.url}) on this Redis signs links with "
                    "another secret: give every node the same TAPLINE_SECRET (or "
                    "the same data/secret.key), and the same TAPLINE_ADMIN_KEY."
                )

    def me(self) -> NodeInfo:
        return NodeInfo(
            id=self.id,
            url=self._config.origin,
            load=self._load(),
            consoles=self._desk.consoles_online(),
            sessions=sorted(self._desk.sessions),
            rooms=self._rooms(),
            secret=self._secret,
        )

    # heartbeat, live nodes, reaping

    async def beat(self) -> None:
        """Write this node's heartbeat; refresh the view of live nodes; reap."""
        me = self.me()
        timeout = self._config.node_timeout_s
        await self._store.put(f"cluster:alive:{self.id}", me.dump(), timeout)
        await self._store.hset(_NODES, self.id, me.dump())
        known = await self._store.hgetall(_NODES)
        alive: dict[str, NodeInfo] = {self.id: me}
        lapsed: list[NodeInfo] = []
        for node_id, last in known.items():
            if node_id == self.id:
                continue
            text = await self._store.get(f"cluster:alive:{node_id}")
            if text is not None:
                alive[node_id] = NodeInfo.load_from(text)
            else:
                lapsed.append(NodeInfo.load_from(last))
        self.nodes = alive
        if time.monotonic() >= self._reap_after:
            await self._end_relayed(alive)
            for dead in lapsed:
                await self._reap(dead, alive)
        self._placed.clear()
        await self._remember()

    async def _end_relayed(self, alive: dict[str, NodeInfo]) -> None:
        """Tell this node's consoles that sessions on a node that stopped ended.

        The reaper tells technicians it finds busy in routing; a direct link's
        technician is not, and only this node knows which of its sockets were
        relayed there."""
        for label, sessions in self._relayed.items():
            channel = self._sockets.get(label)
            for session_id, node in list(sessions.items()):
                if node in alive:
                    continue
                del sessions[session_id]
                logger.info(
                    "node %s: session %s ended with its node %s",
                    self.id,
                    session_id,
                    node,
                )
                if channel is not None:
                    text = encode(
                        Type.ENDED,
                        session=session_id,
                        reason="the server hosting this session stopped",
                    )
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await channel.send(text)

    async def _remember(self) -> None:
        """Note the routing records of this node's consoles and queued customers
        (after every heartbeat and routing event)."""
        self._remembering = False
        router = self._board.router
        online = set(self._desk.consoles_online())
        self._presence = {n: p for n, p in self._presence.items() if n in online}
        for name in online:
            presence = await router.presence(name)
            if presence is not None:
                self._presence[name] = presence
        queued = {
            sid
            for sid, session in self._desk.sessions.items()
            if session.state == SessionState.QUEUED
        }
        self._entries = {s: e for s, e in self._entries.items() if s in queued}
        for sid in queued:
            with contextlib.suppress(NotFound):
                self._entries[sid] = await router.entry(sid)

    async def restore(self) -> None:
        """Redis is back: put back what it lost of this node's people (a Redis
        restarted without persistence is empty), keeping each customer's place."""
        router = self._board.router
        # Every node's heartbeat lapsed during the outage: give the others one
        # timeout to beat again before taking anyone for dead.
        self._reap_after = time.monotonic() + self._config.node_timeout_s
        await self.beat()
        online = set(self._desk.consoles_online())
        for name, held in self._presence.items():
            if name in online and await router.presence(name) is None:
                status = (
                    Status.AVAILABLE if held.status == Status.WRAP_UP else held.status
                )
                await router.sign_in(
                    name,
                    queues=held.queues,
                    skills=held.skills,
                    auto_answer=held.auto_answer,
                    status=status,
                )
        for sid, entry in self._entries.items():
            session = self._desk.sessions.get(sid)
            if session is None or session.state != SessionState.QUEUED:
                continue
            try:
                await router.entry(sid)
            except NotFound:
                # `transfer` writes the entry back with its first enqueue time.
                await router.transfer(entry, entry.queue)
        logger.info(
            "node %s: routing records checked after the store came back", self.id
        )

    async def _beat_forever(self) -> None:
        every = self._config.node_timeout_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self.beat()
            except StoreUnavailable:
                logger.debug("node %s: heartbeat skipped, store unavailable", self.id)
            except Exception:
                logger.exception("node %s: heartbeat failed", self.id)

    async def _reap(self, dead: NodeInfo, alive: dict[str, NodeInfo]) -> None:
        owner = f"{self.id}-{secrets.token_hex(2)}"
        won = await self._store.claim(f"cluster:reap:{dead.id}", owner, _REAP_CLAIM_S)
        if won != owner:
            return
        logger.warning(
            "node %s: node %s stopped beating; taking over what it held",
            self.id,
            dead.id,
        )
        for room in dead.rooms:
            await self._store.put(
                f"cluster:room-ended:{room}",
                "its server stopped",
                self._config.demo_link_ttl_s,
            )
        router = self._board.router
        elsewhere = {name for node in alive.values() for name in node.consoles}
        for name in dead.consoles:
            if name not in elsewhere:
                await router.sign_out(name)
        hosted = set(dead.sessions)
        directory = await self._store.hgetall(_SESSIONS)
        hosted |= {sid for sid, node in directory.items() if node == dead.id}
        for entry in await router.entries():
            if entry.session in hosted:
                # Nobody is connected for them now: they keep their place for the
                # grace period and get it back when they return on a live node.
                with contextlib.suppress(NotFound):
                    await router.disconnected(entry.id)
        for presence in await router.technicians():
            if presence.session in hosted and presence.status == Status.BUSY:
                text = encode(
                    Type.ENDED,
                    session=presence.session,
                    reason="the server hosting this session stopped",
                )
                await self._desk.tell_technician(presence.name, text)
                self._relay_console(presence.name, text)
                if presence.queues:
                    await router.finish(presence.name, presence.queues[0])
        for sid in hosted:
            await self._store.hdel_if(_SESSIONS, sid, dead.id)
        await self._store.hdel(_NODES, dead.id)
        logger.info(
            "node %s: reaped node %s (%d consoles, %d sessions, %d rooms)",
            self.id,
            dead.id,
            len(dead.consoles),
            len(hosted),
            len(dead.rooms),
        )

    # placement

    def _session_closed(self, session: SupportSession) -> None:
        self._spawn(self._forget_session(session.id))

    async def _forget_session(self, session_id: str) -> None:
        """A session ended here: every node refuses its link from now on, and the
        directory lets it go (the mark keeps its node, for late dispositions)."""
        await self._store.put(
            f"cluster:ended:{session_id}", self.id, self._config.customer_link_ttl_s
        )
        await self._store.hdel_if(_SESSIONS, session_id, self.id)

    async def home(self, session_id: str) -> NodeInfo:
        """The node hosting this session's media, choosing one if there is none."""
        if await self._store.get(f"cluster:ended:{session_id}") is not None:
            raise LinkError(
                "This support session has ended. Ask for a new link if you need "
                "help again.",
                code="used",
            )
        current = await self._store.hget(_SESSIONS, session_id)
        if current:
            alive = await self._alive(current)
            if alive is not None:
                return alive
        chosen = self._least_loaded()
        if current:
            # Its node is gone: take it over (one node wins the swap).
            if not await self._store.hswap(_SESSIONS, session_id, current, chosen.id):
                return await self.home(session_id)
        else:
            if not await self._store.hsetnx(_SESSIONS, session_id, chosen.id):
                return await self.home(session_id)
        self._placed[chosen.id] = self._placed.get(chosen.id, 0) + 1
        logger.info("session %s: placed on node %s", session_id, chosen.id)
        return chosen

    async def _alive(self, node_id: str) -> NodeInfo | None:
        """The node if its heartbeat is current (even if newer than our view)."""
        if node_id in self.nodes:
            return self.nodes[node_id]
        text = await self._store.get(f"cluster:alive:{node_id}")
        return None if text is None else NodeInfo.load_from(text)

    def _least_loaded(self) -> NodeInfo:
        nodes = dict(self.nodes)
        nodes[self.id] = self.me()
        # Sessions placed since the last heartbeat count too, so that a burst of
        # new customers spreads over the nodes instead of all taking one.
        return min(
            nodes.values(),
            key=lambda n: (n.load + self._placed.get(n.id, 0), n.id != self.id, n.id),
        )

    async def placement(self, session_id: str) -> str | None:
        """The origin to send this session's customer to, or None for this node."""
        home = await self.home(session_id)
        return None if home.id == self.id else home.url

    async def room_origin(self, room_id: str) -> str | None:
        """The origin of the live node hosting this demo room, or None if none
        does; a room whose node died is ended (NotFound with the reason)."""
        for node in self.nodes.values():
            if node.id != self.id and room_id in node.rooms:
                return node.url
        reason = await self._store.get(f"cluster:room-ended:{room_id}")
        if reason is not None:
            raise NotFound(f"This demo has ended: {reason}.", code="ended")
        return None

    async def host(self, session_id: str) -> None:
        """A customer joins here: refuse if the session's media is elsewhere."""
        home = await self.home(session_id)
        if home.id != self.id:
            raise ProtocolError(
                "This session is served by another server. Reload the page.",
                code="moved",
                url=home.url,
            )

    # the bus

    async def send_to(self, node: str, kind: str, **fields: Any) -> None:
        channel = _ALL if node == "*" else f"cluster:node:{node}"
        text = json.dumps({"from": self.id, "kind": kind, **fields})
        await self._store.publish(channel, text)

    def _publish_event(self, event: RoutingEvent, data: dict[str, Any]) -> None:
        self._spawn(self.send_to("*", "routing", **_event_wire(event, data)))
        self._remember_soon()

    def _remember_soon(self) -> None:
        if not self._remembering:
            self._remembering = True
            self._spawn(self._remember())

    def _relay_console(self, technician: str, text: str) -> None:
        self._spawn(self.send_to("*", "console", technician=technician, text=text))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(coro))
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _quietly(self, coro: Any) -> None:
        try:
            await coro
        except StoreUnavailable:
            logger.debug("node %s: bus message dropped, store unavailable", self.id)
        except Exception:
            logger.exception("node %s: bus work failed", self.id)

    async def _listen_forever(self) -> None:
        channels = [_ALL, f"cluster:node:{self.id}"]
        while True:
            messages = self._store.listen(channels)
            try:
                async for _channel, text in messages:
                    try:
                        await self._receive(json.loads(text))
                    except Exception:
                        logger.exception("node %s: bus message failed", self.id)
            finally:
                # Close the subscription here, even when cancelled, rather than
                # whenever the generator happens to be collected.
                await messages.aclose()
            await self._store.wait_up()
            with contextlib.suppress(StoreUnavailable):
                await self.beat()

    async def _receive(self, message: dict[str, Any]) -> None:
        sender = str(message.get("from", ""))
        if sender == self.id:
            return
        kind = message.get("kind")
        if kind == "routing":
            event, data = _event_from_wire(message)
            self._board.handle_event(event, data)
            self._remember_soon()
        elif kind == "console":
            await self._desk.tell_technician(message["technician"], message["text"])
        elif kind == "deliver":
            channel = self._sockets.get(message["socket"])
            if channel is not None:
                await channel.send(message["text"])
        elif kind == "request":
            self._spawn(self._answer(sender, message))
        elif kind == "reply":
            future = self._replies.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)

    # relayed signalling: the console's side

    def is_remote(self, session_id: str) -> bool:
        return (
            session_id not in self._desk.sessions and session_id not in self._desk.ended
        )

    async def _request(self, node: str, op: str, **fields: Any) -> dict[str, Any]:
        request_id = secrets.token_hex(6)
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._replies[request_id] = future
        try:
            await self.send_to(node, "request", id=request_id, op=op, **fields)
            reply = await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except TimeoutError:
            raise StoreUnavailable(
                "The server holding this session does not answer."
            ) from None
        finally:
            self._replies.pop(request_id, None)
        if "error" in reply:
            error = reply["error"]
            raise ProtocolError(str(error["reason"]), code=str(error["code"]))
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _media_node(self, session_id: str) -> str:
        node = await self._store.hget(_SESSIONS, session_id)
        if not node:
            node = await self._store.get(f"cluster:ended:{session_id}")
        if not node or await self._alive(node) is None:
            raise NotFound("There is no such session.")
        return node

    async def offer(self, name: str, channel: Channel, message: Offer) -> str:
        """A technician's offer for a session hosted on another node."""
        node = await self._media_node(message.session)
        relayed = self._relayed.setdefault(channel.label, {})
        result = await self._request(
            node,
            "offer",
            session=message.session,
            name=name,
            socket=channel.label,
            attach=message.session not in relayed,
            sdp=message.sdp,
            width=message.width,
            height=message.height,
        )
        relayed[message.session] = node
        self._sockets[channel.label] = channel
        return str(result["sdp"])

    async def end(self, name: str, channel: Channel, session_id: str, why: str) -> None:
        node = await self._media_node(session_id)
        await self._request(node, "end", session=session_id, name=name, reason=why)

    async def console(
        self, name: str, channel: Channel, message: Transfer | Disposition
    ) -> None:
        """A console's transfer or disposition for a session hosted elsewhere."""
        node = await self._media_node(message.session)
        if isinstance(message, Transfer):
            await self._request(
                node,
                "transfer",
                session=message.session,
                name=name,
                queue=message.queue,
            )
            # The technician's seat is empty now: a later offer attaches anew.
            self._relayed.get(channel.label, {}).pop(message.session, None)
        else:
            await self._request(
                node,
                "disposition",
                session=message.session,
                name=name,
                code=message.code,
                notes=message.notes,
            )

    async def tool(self, name: str, raw: str) -> dict[str, Any] | None:
        """A technician's tool (zoom, freeze, snapshot, ...) for a session hosted
        elsewhere: the message goes as received and is parsed again there."""
        message = json.loads(raw)
        node = await self._media_node(str(message["session"]))
        result = await self._request(node, "tool", name=name, raw=raw)
        reply: dict[str, Any] | None = result.get("reply")
        return reply

    async def left(self, channel: Channel, reason: str) -> None:
        """A console's socket closed: detach it from sessions on other nodes."""
        self._sockets.pop(channel.label, None)
        for session_id, node in self._relayed.pop(channel.label, {}).items():
            with contextlib.suppress(StoreUnavailable):
                await self.send_to(
                    node,
                    "request",
                    id="",
                    op="detach",
                    session=session_id,
                    socket=channel.label,
                    reason=reason,
                )

    # relayed signalling: the media node's side

    async def _answer(self, sender: str, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": message.get("id", "")}
        try:
            reply["result"] = await self._perform(sender, message)
        except TaplineError as exc:
            reply["error"] = {"code": exc.code, "reason": exc.reason}
        if reply["id"]:
            await self.send_to(sender, "reply", **reply)

    async def _perform(self, sender: str, message: dict[str, Any]) -> dict[str, Any]:
        op = message["op"]
        if op == "disposition":
            await self._board.disposition(
                message["name"], message["session"], message["code"], message["notes"]
            )
            return {}
        if op == "tool":
            return {"reply": await self._tool(str(message["name"]), message["raw"])}
        session = self._desk.get(str(message["session"]))
        key = (sender, str(message["socket"])) if "socket" in message else None
        if op == "detach":
            channel = self._remote_channels.pop(key) if key else None
            if channel is not None:
                await session.detach(Role.TECHNICIAN, channel, message["reason"])
            return {}
        if session.technician != message["name"]:
            raise AuthError("This session is not yours.", code="forbidden")
        if op == "end":
            await session.end(f"ended by technician: {message['reason']}")
            return {}
        if op == "transfer":
            await self._board.transfer(message["name"], session, message["queue"])
            return {}
        if op != "offer" or key is None:
            raise ProtocolError("Unknown relayed request.", code="bad_message")
        channel = self._remote_channels.get(key)
        if channel is None:
            channel = self._remote_channels[key] = RemoteChannel(self, *key)
        if message["attach"]:
            await session.attach(Role.TECHNICIAN, channel)
        sdp = await session.offer(
            Role.TECHNICIAN, message["sdp"], message["width"], message["height"]
        )
        return {"sdp": sdp}

    @property
    def store_up(self) -> bool:
        return self._store.available

    async def _tool(self, name: str, raw: str) -> dict[str, Any] | None:
        tool = parse(
            raw,
            max_bytes=self._config.max_message_bytes,
            max_sdp_bytes=self._config.max_sdp_bytes,
        )
        if not isinstance(tool, TOOL_MESSAGES):
            raise ProtocolError("Not a tool message.", code="bad_message")
        session = self._desk.get(tool.session)
        if session.technician != name:
            raise AuthError("This session is not yours.", code="forbidden")
        return await session.tools.handle(Role.TECHNICIAN, name, tool)

    def figures(self) -> dict[str, Any]:
        """The cluster as this node sees it, for /healthz."""
        return {
            "node": self.id,
            "nodes": {
                n.id: {"url": n.url, "load": n.load, "rooms": len(n.rooms)}
                for n in self.nodes.values()
            },
            "store": "up" if self.store_up else "unavailable",
        }
