"""`create_app(config)`: wires the store, links, domain and HTTP routes into one app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from recorder import finalize_crashed
from server.api import Api, error_middleware, qr_svg
from server.cluster import Cluster
from server.config import Config
from server.gallery import Gallery
from server.guard import guard_middleware
from server.keys import load_or_create
from server.library import DB_NAME, Library
from server.library_http import LibraryHttp
from server.links import Kind, LinkSigner
from server.media import Peer, announce_host_addresses
from server.media.ice import own_addresses
from server.metrics import Metrics
from server.pages import STAFF_COOKIE, Pages, security_headers
from server.rooms import RoomDirectory
from server.routing import Status
from server.signalling import Signalling
from server.store import MemoryStore, Store
from server.store.redis import RedisStore
from server.support import SupportDesk
from server.switchboard import Switchboard

__all__ = ["NODE", "Node", "create_app"]

logger = logging.getLogger(__name__)


@dataclass
class Node:
    """Everything one running node holds, reachable from the app as app[NODE]."""

    config: Config
    store: Store
    signer: LinkSigner
    desk: SupportDesk
    switchboard: Switchboard
    signalling: Signalling
    metrics: Metrics
    admin_key: str
    admin_key_created: bool
    rooms: RoomDirectory
    library: Library
    cluster: Cluster | None = None
    """With Redis: this node's place among the others."""

    def login_url(self, name: str, role: str = "technician") -> str:
        token, _ = self.signer.sign(
            Kind.LOGIN, self.config.login_link_ttl_s, name=name, role=role
        )
        return f"{self.config.origin}/j/{token}"


NODE = web.AppKey("node", Node)


def build_node(config: Config) -> Node:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    secret, _ = load_or_create(config.data_dir / "secret.key", config.secret)
    admin_key, created = load_or_create(config.data_dir / "admin.key", config.admin_key)
    store: Store = RedisStore(config.redis_url) if config.redis_url else MemoryStore()
    signer = LinkSigner(secret, store)
    desk = SupportDesk(config)
    switchboard = Switchboard(config, store, desk)
    rooms = RoomDirectory(config, signer, qr_svg)
    library = Library(
        config.recordings_dir,
        config.data_dir / DB_NAME,
        secret,
        retention_days=config.retention_days,
    )
    desk.closed_listeners.append(lambda session: library.index_soon(session.id))
    signalling = Signalling(config, signer, desk, switchboard, STAFF_COOKIE, rooms)
    metrics = Metrics()
    metrics.gauge(
        "peer_connections", "WebRTC peer connections open", lambda: Peer.open_count
    )
    metrics.gauge(
        "sessions_active", "Support sessions in progress", lambda: len(desk.sessions)
    )
    metrics.gauge(
        "sessions_total",
        "Support sessions started since start",
        lambda: desk.sessions_total,
    )
    metrics.gauge(
        "websockets", "Signalling websockets open", lambda: len(signalling.sockets)
    )
    _routing_metrics(metrics, switchboard)
    metrics.gauge("rooms_active", "Demo rooms open", lambda: len(rooms.rooms))
    metrics.gauge(
        "room_viewers",
        "Viewers in demo rooms",
        lambda: sum(room.viewers for room in rooms.rooms.values()),
    )
    cluster = None
    if isinstance(store, RedisStore):
        cluster = Cluster(
            config,
            store,
            desk,
            switchboard,
            load=lambda: len(desk.sessions) + len(signalling.sockets),
            rooms=lambda: sorted(rooms.rooms),
            secret=secret,
        )
        signalling.remote = cluster
        metrics.gauge(
            "cluster_nodes", "Live nodes this node sees", lambda: len(cluster.nodes)
        )
        metrics.gauge(
            "store_up",
            "1 while the shared store (Redis) answers, else 0",
            lambda: 1 if cluster.store_up else 0,
        )
    return Node(
        config,
        store,
        signer,
        desk,
        switchboard,
        signalling,
        metrics,
        admin_key,
        created,
        rooms,
        library,
        cluster,
    )


def _routing_metrics(metrics: Metrics, board: Switchboard) -> None:
    def per_queue(field: str, period: str = "") -> Callable[[], dict[str, float]]:
        def read() -> dict[str, float]:
            out: dict[str, float] = {}
            for queue, figures in board.figures.items():
                value = figures[period][field] if period else figures[field]
                if value is not None:
                    out[queue] = float(value)
            return out

        return read

    metrics.labelled(
        "queue_waiting", "Customers waiting", "queue", per_queue("waiting")
    )
    metrics.labelled(
        "queue_longest_wait_seconds",
        "Longest current wait",
        "queue",
        per_queue("longest_wait_s"),
    )
    metrics.labelled(
        "queue_service_level",
        "Share answered within target, last 30 minutes",
        "queue",
        per_queue("service_level", "30m"),
    )
    metrics.labelled(
        "queue_answer_seconds_avg",
        "Average speed of answer, last 30 minutes",
        "queue",
        per_queue("asa_s", "30m"),
    )
    metrics.labelled(
        "queue_handle_seconds_avg",
        "Average handle time, last 30 minutes",
        "queue",
        per_queue("aht_s", "30m"),
    )
    metrics.labelled(
        "queue_abandon_rate",
        "Share of customers who left before an answer, last 30 minutes",
        "queue",
        per_queue("abandon_rate", "30m"),
    )

    def by_status() -> dict[str, float]:
        counts = {str(s): 0.0 for s in Status}
        for presence in board.technicians:
            counts[str(presence.status)] += 1
        return counts

    metrics.labelled("technicians", "Technicians by status", "status", by_status)


def create_app(config: Config) -> web.Application:
    if config.ice_host:
        announce_host_addresses([config.ice_host])
    elif not own_addresses():
        logger.warning(
            "this machine has no address but loopback to offer for media: no peer "
            "can connect; start with --ice-host 127.0.0.1"
        )
    node = build_node(config)
    app = web.Application(
        middlewares=[
            security_headers,
            guard_middleware(config, node.signer, node.admin_key, STAFF_COOKIE),
            error_middleware,
        ],
        client_max_size=64 * 1024,
    )
    app[NODE] = node
    pages = Pages(config, node.signer, node.store, node.desk, node.rooms)
    api = Api(
        config, node.signer, node.desk, node.switchboard, node.metrics, node.admin_key
    )
    if node.cluster is not None:
        pages.placement = node.cluster.placement
        pages.room_placement = node.cluster.room_origin
        api.cluster_figures = node.cluster.figures
    app.add_routes(api.routes())
    gallery = Gallery(config, node.signer, node.desk, node.admin_key)
    app.add_routes(gallery.routes())
    library = LibraryHttp(config, node.signer, node.library, node.admin_key)
    app.add_routes(library.routes())
    app.add_routes([web.get("/ws", node.signalling.handle)])
    app.add_routes(pages.routes())
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_going_away)
    return app


async def _going_away(app: web.Application) -> None:
    """Before aiohttp waits for open requests: end sessions, close sockets (1001).

    Ending first tells every participant why and finalizes the recordings; the
    websockets then close with "going away" so their handlers return at once.
    """
    node = app[NODE]
    logger.info(
        "shutting down: ending %d sessions and %d rooms, closing %d sockets",
        len(node.desk.sessions),
        len(node.rooms.rooms),
        len(node.signalling.sockets),
    )
    await node.rooms.close_all("server shutting down")
    await node.desk.close_all("server shutting down")
    await node.signalling.close_all()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    recovered = await asyncio.to_thread(finalize_crashed, node.config.recordings_dir)
    for path in recovered:
        logger.info("recording %s: finalized after an unclean stop", path.name)
    if node.cluster is not None:
        await node.cluster.start()
    scans = asyncio.get_running_loop().create_task(
        node.library.run(node.config.library_scan_s), name="library scans"
    )
    node.switchboard.start()
    if node.config.demo:
        node.rooms.open_demo()
    yield
    logger.info("shutting down: ending %d rooms", len(node.rooms.rooms))
    await node.rooms.close_all("server shutting down")
    await node.switchboard.stop()
    logger.info("shutting down: ending %d sessions", len(node.desk.sessions))
    await node.desk.close_all("server shutting down")
    await node.signalling.close_all()
    if node.cluster is not None:
        await node.cluster.stop()
    scans.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await scans
    try:
        await node.library.rescan()  # what finalized while shutting down
    except Exception:
        logger.exception("library: last scan failed")
    await node.library.close()
    await node.store.close()
