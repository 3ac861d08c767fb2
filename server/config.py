"""One `Config` for the whole server, from defaults, ``TAPLINE_*`` variables and flags.

Nothing else in Tapline reads the environment: `Config.from_env` does it once and
`run.py` applies command-line flags on top.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Config"]


def _secret_repr(value: str) -> str:
    return "'***'" if value else "''"


@dataclass
class Config:
    """Every setting of a Tapline node, with its unit and default."""

    host: str = "127.0.0.1"
    """Address the HTTP server listens on."""
    port: int = 8080
    """TCP port the HTTP server listens on."""
    data_dir: Path = Path("data")
    """Recordings, the generated secret and the admin key live here."""
    public_url: str = ""
    """Origin links are built on (e.g. https://support.example); default: http://host:port."""
    redis_url: str = ""
    """Shared Redis for scale-out; empty: in-memory state on this node."""
    node_timeout_s: float = 10.0
    """With Redis: a node whose heartbeat is this old is dead, seconds."""
    ice_host: str = ""
    """Address the server announces as its ICE host candidate (e.g. 127.0.0.1)."""
    ice_servers: list[str] = field(default_factory=list)
    """STUN/TURN URLs for the server's peers and the browsers; none by default."""
    turn_urls: list[str] = field(default_factory=list)
    """TURN URLs (turn:host:3478?transport=udp, ...?transport=tcp, turns:host:5349
    ?transport=tcp) whose credentials are minted from `turn_secret`; UDP first."""
    turn_secret: str = field(default="", repr=False)
    """Secret shared with the TURN server (coturn static-auth-secret)."""
    turn_ttl_s: int = 12 * 3600
    """How long a minted TURN credential stays valid, seconds."""
    cert: str = ""
    """TLS certificate file (PEM); phones need HTTPS for the camera off localhost."""
    key: str = ""
    """TLS private key file (PEM)."""
    self_signed: bool = False
    """Make (once) and use a self-signed certificate kept in the data dir."""
    secret: str = field(default="", repr=False)
    """HMAC secret for links; empty: generated into <data_dir>/secret.key."""
    admin_key: str = field(default="", repr=False)
    """Bearer key for /api; empty: generated into <data_dir>/admin.key."""
    demo: bool = True
    """Open the built-in demo room with synthetic cameras."""
    log_json: bool = False
    """Log one JSON object per line."""
    log_level: str = "INFO"
    """Root log level."""

    customer_link_ttl_s: int = 24 * 3600
    """How long a customer (support/direct) link stays valid, seconds."""
    login_link_ttl_s: int = 3600
    """How long a one-time staff login link stays valid, seconds."""
    staff_session_ttl_s: int = 12 * 3600
    """How long a staff sign-in lasts, seconds."""
    rejoin_grace_s: float = 10.0
    """A participant who vanished may come back this long before the session ends."""
    heartbeat_s: float = 5.0
    """Websocket ping interval; a missed pong closes the socket, seconds."""
    ice_timeout_s: float = 20.0
    """A peer that has not connected this long after its offer is dropped, seconds."""
    max_message_bytes: int = 64 * 1024
    """Largest websocket message accepted, bytes."""
    max_sdp_bytes: int = 32 * 1024
    """Largest SDP accepted, bytes."""
    max_sessions: int = 200
    ws_messages_per_s: float = 20.0
    """Websocket messages one connection may send per second, sustained."""
    ws_burst: int = 40
    """Websocket messages one connection may send at once before the rate applies."""
    address_messages_per_s: float = 100.0
    """Websocket messages all connections from one address may send per second."""
    address_burst: int = 200
    """Messages one address may send at once before its rate applies."""
    flood_strikes: int = 50
    """Rate-limited messages in a row after which the socket is closed (1008)."""
    auth_failures_per_minute: float = 10.0
    """Failed link, sign-in or API key checks one address may make per minute."""
    auth_failure_burst: int = 20
    """Failed checks one address may make at once before it must slow down."""
    max_send_buffer_bytes: int = 1024 * 1024
    """Outgoing websocket bytes queued for a client that does not read, at most."""
    """Support sessions one node hosts at once."""
    video_bitrate: int = 1_200_000
    """Target bitrate of the encoded feeds, bits per second."""
    video_fps: int = 30
    """Frame rate of synthetic feeds, frames per second."""
    keyframe_interval_s: float = 2.0
    """Longest time between two keyframes of a feed, seconds."""
    keyframe_min_gap_s: float = 0.5
    """Forced keyframes of a feed are coalesced to one per this gap, seconds."""
    max_rooms: int = 20
    """Demo rooms one node hosts at once."""
    max_room_viewers: int = 500
    """Viewers one demo room admits at once."""
    max_room_cameras: int = 8
    """Cameras one demo room takes (studio devices, phones, synthetic)."""
    program_width: int = 960
    """Width of a demo room's program feed, pixels."""
    program_height: int = 540
    """Height of a demo room's program feed, pixels."""
    camera_hold_s: float = 1.5
    """An on-air camera that stops sending is held this long, then slated, seconds."""
    demo_link_ttl_s: int = 7 * 24 * 3600
    """How long a demo room's viewer link stays valid, seconds."""
    room_queue: str = ""
    """Support queue a demo's "Talk to an expert" leads to ("": the first queue)."""
    max_chat_chars: int = 500
    """Longest chat message or question, characters."""
    chat_per_minute: int = 20
    """Chat messages and questions one participant may send per minute."""
    chat_burst: int = 5
    """Messages one participant may send at once before the rate applies."""
    chat_history: int = 100
    """Chat lines a room keeps to show whoever enters."""
    max_questions: int = 300
    """Questions one room keeps."""
    recording_fragment_s: float = 0.5
    """Fragment length of recordings; a crash loses at most about this, seconds."""
    record: bool = True
    """Record support sessions."""
    max_push_bytes: int = 10 * 1024 * 1024
    """Largest image or PDF a technician may send to a customer, bytes."""
    max_photo_bytes: int = 16 * 1024 * 1024
    """Largest full-resolution photo a customer's phone may upload, bytes."""
    max_session_files: int = 200
    """Stills, snapshots, photos and pushed files one session keeps."""
    max_strokes: int = 200
    """Annotations one frozen still takes."""
    retention_days: float = 0.0
    """Recordings older than this are deleted with their data; 0 keeps all, days."""
    library_scan_s: float = 30.0
    """How often the library looks for new or changed recordings, seconds."""
    max_clip_s: float = 600.0
    """Longest clip a trainer may export at once, seconds."""

    queues: list[str] = field(default_factory=lambda: ["support"])
    """Names of the support queues customers can wait in."""
    answer_target_s: float = 20.0
    """Service-level target: customers answered within this, seconds."""
    offer_timeout_s: float = 15.0
    """An offer not accepted in this long goes to the next technician, seconds."""
    max_missed_offers: int = 2
    """Missed offers in a row before a technician is set away."""
    wrap_up_s: float = 30.0
    """After a session, time before a technician is offered again, seconds."""
    queue_grace_s: float = 120.0
    """A waiting customer who closes the page keeps their place this long, seconds."""
    invite_wait_s: float = 60.0
    """A named transfer or an expert invitation waits this long for an answer,
    seconds."""
    dispositions: list[str] = field(
        default_factory=lambda: ["resolved", "follow-up", "escalated", "no-fault-found"]
    )
    """Codes a technician picks from when a session ends."""

    @property
    def origin(self) -> str:
        """The public origin links are built on."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if (self.cert or self.self_signed) else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    def safe_dict(self) -> dict[str, Any]:
        """The settings with secrets starred, for logs and /healthz."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("secret", "admin_key", "turn_secret"):
                value = "***" if value else ""
            elif f.name == "redis_url":
                value = _without_password(value)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Defaults overridden by ``TAPLINE_<FIELD>`` variables."""
        source = os.environ if env is None else env
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = source.get(f"TAPLINE_{f.name.upper()}")
            if raw is None:
                continue
            changes[f.name] = _parse(f.name, f.type, raw)
        return cls(**changes)


def _without_password(url: str) -> str:
    """A Redis URL with its password (if any) starred."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{colon and ':***'}@{host}"


def _parse(name: str, kind: Any, raw: str) -> Any:
    kind = str(kind)
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "list[str]":
            return [part.strip() for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"TAPLINE_{name.upper()}: cannot read {raw!r} as {kind}"
        ) from None
    return raw
