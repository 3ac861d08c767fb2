"""The signalling message schema, defined once for the server and the browser.

Every websocket message is a JSON object ``{"v": 1, "type": ..., ...}``. `parse`
turns raw text into one of the typed messages below or raises `ProtocolError`; no
handler ever sees an unchecked dict. `/api/schema.json` serves `schema()` so the
browser module and tests read the same definition.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any, ClassVar, get_type_hints

from server.errors import ProtocolError

__all__ = [
    "ROOM_MESSAGES",
    "TOOL_MESSAGES",
    "VERSION",
    "Accept",
    "Ask",
    "AutoAnswer",
    "CameraControl",
    "CameraLink",
    "CameraRemove",
    "CameraResult",
    "Candidate",
    "Chat",
    "ClientMessage",
    "Decline",
    "DigitalZoom",
    "Disposition",
    "End",
    "Enter",
    "Expert",
    "Freeze",
    "Invite",
    "Join",
    "Leave",
    "Moderate",
    "Offer",
    "Pause",
    "Pointer",
    "Program",
    "Record",
    "RoomEnd",
    "RoomMessage",
    "RoomOffer",
    "Say",
    "SessionMessage",
    "SetStatus",
    "Snapshot",
    "StrokeAdd",
    "Studio",
    "Transfer",
    "Type",
    "Undo",
    "Unfreeze",
    "Zoom",
    "encode",
    "parse",
    "schema",
]

VERSION = 1


class Type(enum.StrEnum):
    # client -> server
    JOIN = "join"
    OFFER = "offer"
    END = "end"
    STATUS = "status"
    ACCEPT = "accept"
    DECLINE = "decline"
    AUTO_ANSWER = "auto_answer"
    TRANSFER = "transfer"
    DISPOSITION = "disposition"
    CANDIDATE = "candidate"
    INVITE = "invite"
    LEAVE = "leave"
    # client -> server, demo rooms
    ENTER = "enter"
    STUDIO = "studio"
    ROOM_OFFER = "room_offer"
    PROGRAM = "program"
    ZOOM = "zoom"
    CHAT = "chat"
    ASK = "ask"
    MODERATE = "moderate"
    RECORD = "record"
    CAMERA_LINK = "camera_link"
    CAMERA_REMOVE = "camera_remove"
    EXPERT = "expert"
    ROOM_END = "room_end"
    # support session tools (camera_control, camera_result, stroke and pointer are
    # also what the server relays to the other side)
    CAMERA_CONTROL = "camera_control"
    CAMERA_RESULT = "camera_result"
    DIGITAL_ZOOM = "digital_zoom"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    STROKE = "stroke"
    UNDO = "undo"
    CLEAR = "clear"
    POINTER = "pointer"
    SNAPSHOT = "snapshot"
    SAY = "say"
    PAUSE = "pause"
    # server -> client
    WELCOME = "welcome"
    SESSION = "session"
    ANSWER = "answer"
    ENDED = "ended"
    ERROR = "error"
    QUEUE = "queue"
    """A queued customer's place and estimated wait."""
    PRESENCE = "presence"
    """A technician's routing status."""
    QUEUES = "queues"
    """Who waits in the queues a technician serves."""
    OFFERED = "offered"
    """A customer offered to this technician."""
    WITHDRAWN = "withdrawn"
    """An offer ended unanswered."""
    TEAM = "team"
    """The technicians signed in and their status (to transfer to or invite)."""
    ROOM = "room"
    """A demo room's summary (what this participant may see of it)."""
    CHAT_LINE = "chat_line"
    """One chat message of a room."""
    QUESTIONS = "questions"
    """A room's questions: all for staff, a viewer's own for a viewer."""
    CAMERA_INVITE = "camera_invite"
    """A camera link for a phone, with its QR code."""
    EXPERT_LINK = "expert_link"
    """A support link for a viewer who asked to talk to an expert."""
    OK = "ok"
    """A request without another reply was done (carries its ref)."""
    TOOLS = "tools"
    """A support session's tools: frozen still, strokes, zoom, camera paused."""
    SAID = "said"
    """One chat line of a support session."""
    FILES = "files"
    """A support session's files (the customer sees what was shown or sent)."""


@dataclass(frozen=True)
class ClientMessage:
    type: ClassVar[Type]
    ref: str | None = dataclasses.field(default=None, kw_only=True)
    """Echoed back on the reply or error, so a client can match them."""


@dataclass(frozen=True)
class Join(ClientMessage):
    """Enter with a participant token (customer) or the staff cookie (console)."""

    type: ClassVar[Type] = Type.JOIN
    token: str = ""
    device: str = ""


@dataclass(frozen=True)
class Offer(ClientMessage):
    """A browser's SDP offer for one session; the server answers."""

    type: ClassVar[Type] = Type.OFFER
    session: str
    sdp: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Candidate(ClientMessage):
    """A trickled ICE candidate for the session's last offer; empty: no more."""

    type: ClassVar[Type] = Type.CANDIDATE
    session: str
    candidate: str = ""
    mid: str = ""
    index: int = 0


@dataclass(frozen=True)
class End(ClientMessage):
    type: ClassVar[Type] = Type.END
    session: str
    reason: str = "ended by participant"


@dataclass(frozen=True)
class SetStatus(ClientMessage):
    """A technician chooses 'available' or 'away'."""

    type: ClassVar[Type] = Type.STATUS
    status: str


@dataclass(frozen=True)
class Accept(ClientMessage):
    type: ClassVar[Type] = Type.ACCEPT
    entry: str


@dataclass(frozen=True)
class Decline(ClientMessage):
    type: ClassVar[Type] = Type.DECLINE
    entry: str


@dataclass(frozen=True)
class AutoAnswer(ClientMessage):
    type: ClassVar[Type] = Type.AUTO_ANSWER
    on: bool


@dataclass(frozen=True)
class Transfer(ClientMessage):
    """Hand the customer of `session` to another queue or to a named technician,
    without them rejoining."""

    type: ClassVar[Type] = Type.TRANSFER
    session: str
    queue: str = ""
    technician: str = ""


@dataclass(frozen=True)
class Invite(ClientMessage):
    """Ask an expert into a live session: a named technician, or anyone serving
    `queue` (the session's by default) who has `skill`."""

    type: ClassVar[Type] = Type.INVITE
    session: str
    technician: str = ""
    queue: str = ""
    skill: str = ""


@dataclass(frozen=True)
class Leave(ClientMessage):
    """The expert leaves a session; it goes on without them."""

    type: ClassVar[Type] = Type.LEAVE
    session: str


@dataclass(frozen=True)
class Disposition(ClientMessage):
    """A technician's closing code and notes for an ended session."""

    type: ClassVar[Type] = Type.DISPOSITION
    session: str
    code: str
    notes: str = ""


# Demo rooms. A viewer or a phone camera enters with the participant token its link
# gave it; staff enter a room's studio with their sign-in cookie.


@dataclass(frozen=True)
class Enter(ClientMessage):
    """Enter a demo room with a viewer or camera participant token."""

    type: ClassVar[Type] = Type.ENTER
    token: str


@dataclass(frozen=True)
class Studio(ClientMessage):
    """Staff: direct `room`, or open a new room titled `title` when `room` is empty."""

    type: ClassVar[Type] = Type.STUDIO
    room: str = ""
    title: str = ""
    queue: str = ""
    """A new room's support queue ("Talk to an expert"); the configured default."""


@dataclass(frozen=True)
class RoomMessage(ClientMessage):
    """A message about one room the sender is in."""

    room: str


@dataclass(frozen=True)
class RoomOffer(RoomMessage):
    """An SDP offer for one purpose: watch the program, monitor the studio, publish
    a camera (`camera` names it within the room) or the presenter's microphone."""

    type: ClassVar[Type] = Type.ROOM_OFFER
    sdp: str
    purpose: str
    camera: str = ""
    name: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Program(RoomMessage):
    """Put a shot on air: one camera, picture-in-picture, side by side, or a slate."""

    type: ClassVar[Type] = Type.PROGRAM
    layout: str
    main: str = ""
    second: str = ""
    slate: str = ""


@dataclass(frozen=True)
class Zoom(RoomMessage):
    """Digital zoom on a camera: `factor` in percent, centre `x`, `y` in percent."""

    type: ClassVar[Type] = Type.ZOOM
    camera: str
    factor: int = 100
    x: int = 50
    y: int = 50


@dataclass(frozen=True)
class Chat(RoomMessage):
    type: ClassVar[Type] = Type.CHAT
    text: str
    name: str = ""


@dataclass(frozen=True)
class Ask(RoomMessage):
    """A viewer's question for the presenter."""

    type: ClassVar[Type] = Type.ASK
    text: str
    name: str = ""


@dataclass(frozen=True)
class Moderate(RoomMessage):
    """Staff: mark a question answered (or open again), pin, unpin or dismiss it."""

    type: ClassVar[Type] = Type.MODERATE
    question: int
    action: str


@dataclass(frozen=True)
class Record(RoomMessage):
    type: ClassVar[Type] = Type.RECORD
    on: bool


@dataclass(frozen=True)
class CameraLink(RoomMessage):
    """Staff: a link that makes a phone one more camera of the room."""

    type: ClassVar[Type] = Type.CAMERA_LINK
    name: str


@dataclass(frozen=True)
class CameraRemove(RoomMessage):
    type: ClassVar[Type] = Type.CAMERA_REMOVE
    camera: str


@dataclass(frozen=True)
class Expert(RoomMessage):
    """A viewer asks to talk to an expert one to one."""

    type: ClassVar[Type] = Type.EXPERT


@dataclass(frozen=True)
class RoomEnd(RoomMessage):
    type: ClassVar[Type] = Type.ROOM_END
    reason: str = "ended by the presenter"


# Support session tools: the technician steers the customer's camera, freezes,
# draws, keeps snapshots; both sides chat; the customer may pause their camera.
# Points are in ten-thousandths of the picture (0-10000), origin top left.


@dataclass(frozen=True)
class SessionMessage(ClientMessage):
    """A message about one support session the sender is in."""

    session: str


@dataclass(frozen=True)
class CameraControl(SessionMessage):
    """Technician: ask the customer's phone to switch camera, light, zoom or take
    a full-resolution photo (`zoom` in percent of the widest view)."""

    type: ClassVar[Type] = Type.CAMERA_CONTROL
    action: str
    facing: str = ""
    on: bool = False
    zoom: int = 100


@dataclass(frozen=True)
class CameraResult(SessionMessage):
    """Customer's page: how a camera request went (`unsupported`: the phone cannot)."""

    type: ClassVar[Type] = Type.CAMERA_RESULT
    request: str
    action: str
    ok: bool
    unsupported: bool = False
    reason: str = ""
    facing: str = ""
    torch: bool = False
    zoom: int = 0


@dataclass(frozen=True)
class DigitalZoom(SessionMessage):
    """Technician: crop on the server; `factor` in percent, centre in percent."""

    type: ClassVar[Type] = Type.DIGITAL_ZOOM
    factor: int = 100
    x: int = 50
    y: int = 50


@dataclass(frozen=True)
class Freeze(SessionMessage):
    type: ClassVar[Type] = Type.FREEZE


@dataclass(frozen=True)
class Unfreeze(SessionMessage):
    type: ClassVar[Type] = Type.UNFREEZE


@dataclass(frozen=True)
class StrokeAdd(SessionMessage):
    """Technician: one annotation on the frozen still."""

    type: ClassVar[Type] = Type.STROKE
    shape: str
    points: list[int]
    colour: str = "red"
    text: str = ""


@dataclass(frozen=True)
class Undo(SessionMessage):
    type: ClassVar[Type] = Type.UNDO


@dataclass(frozen=True)
class Clear(SessionMessage):
    type: ClassVar[Type] = Type.CLEAR


@dataclass(frozen=True)
class Pointer(SessionMessage):
    """Technician: where the pointer is on the live picture (`on` false hides it)."""

    type: ClassVar[Type] = Type.POINTER
    x: int = 0
    y: int = 0
    on: bool = True


@dataclass(frozen=True)
class Snapshot(SessionMessage):
    type: ClassVar[Type] = Type.SNAPSHOT


@dataclass(frozen=True)
class Say(SessionMessage):
    type: ClassVar[Type] = Type.SAY
    text: str


@dataclass(frozen=True)
class Pause(SessionMessage):
    """Customer: pause (or resume) their camera without ending the session."""

    type: ClassVar[Type] = Type.PAUSE
    paused: bool


TOOL_MESSAGES: tuple[type[SessionMessage], ...] = (
    CameraControl,
    CameraResult,
    DigitalZoom,
    Freeze,
    Unfreeze,
    StrokeAdd,
    Undo,
    Clear,
    Pointer,
    Snapshot,
    Say,
    Pause,
)

ROOM_MESSAGES: tuple[type[ClientMessage], ...] = (
    Enter,
    Studio,
    RoomOffer,
    Program,
    Zoom,
    Chat,
    Ask,
    Moderate,
    Record,
    CameraLink,
    CameraRemove,
    Expert,
    RoomEnd,
)

_CLIENT_TYPES: dict[str, type[ClientMessage]] = {
    str(cls.type): cls
    for cls in (
        Join,
        Offer,
        Candidate,
        End,
        SetStatus,
        Accept,
        Decline,
        AutoAnswer,
        Transfer,
        Disposition,
        Invite,
        Leave,
    )
} | {str(cls.type): cls for cls in ROOM_MESSAGES + TOOL_MESSAGES}
_LIMITS = {
    "token": 2048,
    "device": 64,
    "session": 64,
    "reason": 200,
    "ref": 64,
    "status": 16,
    "entry": 64,
    "queue": 64,
    "code": 64,
    "notes": 4000,
    "technician": 40,
    "skill": 40,
    "room": 64,
    "title": 80,
    "purpose": 16,
    "camera": 32,
    "name": 40,
    "layout": 16,
    "main": 32,
    "second": 32,
    "slate": 80,
    "text": 1000,
    "action": 16,
    "candidate": 1024,
    "mid": 32,
    "facing": 16,
    "request": 32,
    "shape": 16,
    "colour": 16,
    "points": 512,
}
"""Longest accepted string per field, characters (SDP is bounded by Config)."""
_CHOICES = {
    "room_offer.purpose": frozenset({"watch", "monitor", "camera", "mic"}),
    "program.layout": frozenset({"single", "pip", "side", "slate"}),
    "moderate.action": frozenset({"answered", "reopen", "pin", "unpin", "dismiss"}),
    "camera_control.action": frozenset({"facing", "torch", "zoom", "photo"}),
    "camera_control.facing": frozenset({"", "user", "environment"}),
    "camera_result.action": frozenset({"facing", "torch", "zoom", "photo"}),
    "stroke.shape": frozenset({"arrow", "circle", "freehand", "text", "marker"}),
    "stroke.colour": frozenset({"red", "yellow", "green", "blue", "white"}),
}
"""Fields that take one of a few words, by 'type.field'."""


def parse(raw: str | bytes, *, max_bytes: int, max_sdp_bytes: int) -> ClientMessage:
    """Validate one websocket message into its typed form."""
    if len(raw) > max_bytes:
        raise ProtocolError(f"Message over {max_bytes} bytes.", code="too_large")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("Message is not valid JSON.", code="bad_json") from None
    except RecursionError:
        raise ProtocolError("Message is nested too deeply.", code="bad_json") from None
    if not isinstance(data, dict):
        raise ProtocolError("Message must be a JSON object.", code="bad_message")
    ref = data.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > _LIMITS["ref"]):
        raise ProtocolError("Field 'ref' must be a short string.", code="bad_message")
    if data.get("v", VERSION) != VERSION:
        raise ProtocolError(
            f"Protocol version {data.get('v')!r} is not supported; use {VERSION}.",
            code="bad_message",
            ref=ref,
        )
    kind = data.get("type")
    if kind == Type.ANSWER:
        raise ProtocolError(
            "The server never sends offers, so there is nothing to answer.",
            code="wrong_state",
            ref=ref,
        )
    cls = _CLIENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(
            f"Unknown message type {kind!r}.", code="unknown_type", ref=ref
        )
    return _build(cls, data, ref, max_sdp_bytes)


def _build(
    cls: type[ClientMessage], data: dict[str, Any], ref: str | None, max_sdp: int
) -> ClientMessage:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {"ref": ref}
    for f in dataclasses.fields(cls):
        if f.name == "ref":
            continue
        required = (
            f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )
        if f.name not in data:
            if required:
                raise ProtocolError(
                    f"'{cls.type}' needs field '{f.name}'.", code="bad_message", ref=ref
                )
            continue
        value = data[f.name]
        expected = hints[f.name]
        if expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            ok = ok and 0 <= value <= 100_000
        elif expected is bool:
            ok = isinstance(value, bool)
        elif expected == list[int]:
            ok = isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000
                for v in value
            )
            limit = _LIMITS.get(f.name, 64)
            if ok and len(value) > limit:
                raise ProtocolError(
                    f"Field '{f.name}' has over {limit} numbers.",
                    code="too_large",
                    ref=ref,
                )
        else:
            ok = isinstance(value, str)
            limit = max_sdp if f.name == "sdp" else _LIMITS.get(f.name, 256)
            if ok and len(value) > limit:
                raise ProtocolError(
                    f"Field '{f.name}' is over {limit} characters.",
                    code="too_large",
                    ref=ref,
                )
        if not ok:
            raise ProtocolError(
                f"Field '{f.name}' of '{cls.type}' has the wrong type"
                + (" (whole numbers 0-10000)." if expected == list[int] else "."),
                code="bad_message",
                ref=ref,
            )
        choices = _CHOICES.get(f"{cls.type}.{f.name}")
        if choices is not None and value not in choices:
            raise ProtocolError(
                f"Field '{f.name}' must be one of: {', '.join(sorted(choices))}.",
                code="bad_message",
                ref=ref,
            )
        values[f.name] = value
    return cls(**values)


def encode(kind: Type, **fields: Any) -> str:
    """A server message as JSON text."""
    return json.dumps({"v": VERSION, "type": str(kind), **fields})


def schema() -> dict[str, Any]:
    """The client message types and their fields, for the browser and the docs."""
    out: dict[str, Any] = {"version": VERSION, "client": {}, "server": []}
    for name, cls in _CLIENT_TYPES.items():
        hints = get_type_hints(cls)
        out["client"][name] = {
            f.name: getattr(hints[f.name], "__name__", str(hints[f.name]))
            for f in dataclasses.fields(cls)
        }
    out["server"] = [str(t) for t in Type if str(t) not in _CLIENT_TYPES]
    return out
