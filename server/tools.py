"""The technician's tools in a support session, and the customer's camera pause.

`SessionTools` takes the tool messages of one session (already typed and checked by
`server.messages`), changes the session's `Stage` (what the technician's view and
the recording show), keeps the files it makes in `SessionFiles`, tells both sides,
and writes every action to the session's timeline with who did it and the files or
annotation data it refers to.

    technician                     server                         customer page
    camera_control ───────────────> relay with a request id ───> applyConstraints /
                                                                 getUserMedia
    console <── camera_result ───── relay, timeline <─────────── camera_result
    freeze ───> latest decoded frame → PNG, Stage shows it ──> tools {frozen: url}
    stroke ───> Stage draws it (burned into the recording) ──> stroke (at once)
    snapshot ─> latest decoded frame → PNG in files/ ──> files (technician only)
    say <─────────────────────────── said (both) ─────────────────────────> say
                                    Stage shows the slate <──────────────── pause

No aiohttp here: `server/gallery.py` serves and receives the files over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np

from server.config import Config
from server.errors import AuthError, ProtocolError
from server.files import (
    CUSTOMER_KINDS,
    FileKind,
    SessionFile,
    SessionFiles,
    check_upload,
)
from server.media import Feed, Zoom
from server.media.annotation import Shape, Stroke, draw_strokes
from server.media.program import MAX_ZOOM, bgr
from server.media.stage import Stage, zoom_window
from server.messages import (
    CameraControl,
    CameraResult,
    Clear,
    DigitalZoom,
    Freeze,
    Pause,
    Pointer,
    Say,
    SessionMessage,
    Snapshot,
    StrokeAdd,
    Type,
    Undo,
    Unfreeze,
    encode,
)

__all__ = ["PAUSED_SLATE", "Host", "SessionTools"]

logger = logging.getLogger(__name__)

CUSTOMER = "customer"
TECHNICIAN = "technician"
PAUSED_SLATE = "Camera paused by the customer"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
PUSH_TYPES = IMAGE_TYPES | {"application/pdf"}

_POINTS = {
    Shape.ARROW: (2, 2),
    Shape.CIRCLE: (2, 2),
    Shape.FREEHAND: (2, 256),
    Shape.TEXT: (1, 1),
    Shape.MARKER: (1, 1),
}
"""Points each shape takes: (fewest, most)."""
_MAX_TEXT_CHARS = 120
_PENDING_REQUESTS = 16
"""Camera requests awaiting the phone's answer; older ones are forgotten."""
_POINTER_MIN_GAP_S = 1 / 30
"""Pointer moves closer together than this are dropped, seconds."""
_CHAT_HISTORY = 100


class Host(Protocol):
    """What the tools need from their session."""

    id: str

    def event(self, kind: str, **fields: Any) -> None: ...

    async def tell(self, role: str | None, text: str) -> bool:
        """Send to one role (None: everyone); False when that role is not there."""
        ...


class SessionTools:
    def __init__(self, host: Host, feed: Feed, directory: Path, config: Config) -> None:
        self.host = host
        self.stage = Stage(host.id, feed)
        self.files = SessionFiles(host.id, directory, config.max_session_files)
        self._config = config
        self.still: SessionFile | None = None
        self.strokes: list[Stroke] = []
        self.paused = False
        self.camera: dict[str, Any] = {}
        """The phone camera's last reported state: facing, torch, zoom."""
        self.chat: deque[dict[str, Any]] = deque(maxlen=_CHAT_HISTORY)
        self._requests: dict[str, CameraControl] = {}
        self._ids = 0
        self._busy = False
        self._pointer_at = 0.0
        self._pointer_on = False
        self._chat_times: dict[str, deque[float]] = {}

    def put(self, frame: av.VideoFrame) -> None:
        """A decoded frame of the customer's camera."""
        self.stage.put(frame)

    # what each side is told

    def state(self) -> dict[str, Any]:
        zoom = self.stage.look.zoom
        return {
            "session": self.host.id,
            "frozen": self.still.wire(self.host.id) if self.still else None,
            "strokes": [s.wire() for s in self.strokes],
            "zoom": None
            if zoom is None
            else {
                "factor": round(zoom.factor * 100),
                "x": round(zoom.x * 100),
                "y": round(zoom.y * 100),
            },
            "paused": self.paused,
            "camera": self.camera,
        }

    def files_for(self, role: str, added: str = "") -> str:
        files = [
            f.wire(self.host.id)
            for f in self.files.files
            if role == TECHNICIAN or f.kind in CUSTOMER_KINDS
        ]
        return encode(Type.FILES, session=self.host.id, files=files, added=added)

    async def welcome(self, role: str) -> None:
        """A participant (re)joined: bring their page up to date."""
        await self.host.tell(role, encode(Type.TOOLS, **self.state()))
        await self.host.tell(role, self.files_for(role))
        for line in self.chat:
            await self.host.tell(role, encode(Type.SAID, **line))

    async def _tell_state(self) -> None:
        await self.host.tell(None, encode(Type.TOOLS, **self.state()))

    async def _tell_files(self, added: SessionFile) -> None:
        await self.host.tell(TECHNICIAN, self.files_for(TECHNICIAN, added.name))
        if added.kind in CUSTOMER_KINDS:
            await self.host.tell(CUSTOMER, self.files_for(CUSTOMER, added.name))

    # messages

    async def handle(
        self, role: str, name: str, message: SessionMessage
    ) -> dict[str, Any] | None:
        """Do what `message` asks; returns the reply's fields (None: no reply)."""
        if isinstance(message, (CameraResult, Pause)):
            if role != CUSTOMER:
                raise AuthError(
                    "Only the customer's page can do that.", code="forbidden"
                )
            if isinstance(message, CameraResult):
                return await self._camera_result(message)
            return await self._pause(message.paused)
        if isinstance(message, Say):
            return await self._say(role, name, message.text)
        if role != TECHNICIAN:
            raise AuthError("Only technicians can do that.", code="forbidden")
        by = f"{role}:{name}"
        if isinstance(message, CameraControl):
            return await self._camera_control(by, message)
        if isinstance(message, DigitalZoom):
            return await self._zoom(by, message)
        if isinstance(message, Freeze):
            return await self._freeze(by)
        if isinstance(message, Unfreeze):
            return await self._unfreeze(by)
        if isinstance(message, StrokeAdd):
            return await self._stroke(by, message)
        if isinstance(message, (Undo, Clear)):
            return await self._erase(by, clear=isinstance(message, Clear))
        if isinstance(message, Pointer):
            return await self._pointer(by, message)
        if isinstance(message, Snapshot):
            return await self._snapshot(by)
        raise ProtocolError(f"'{message.type}' is not a tool.", code="unknown_type")

    # camera control

    async def _camera_control(self, by: str, msg: CameraControl) -> dict[str, Any]:
        if msg.action == "facing" and not msg.facing:
            raise ProtocolError("Say which camera: 'user' or 'environment'.")
        if msg.action == "zoom" and not 100 <= msg.zoom <= 1000:
            raise ProtocolError("Zoom is a percentage from 100 to 1000.")
        request = secrets.token_hex(4)
        relayed = encode(
            Type.CAMERA_CONTROL,
            session=self.host.id,
            request=request,
            action=msg.action,
            facing=msg.facing,
            on=msg.on,
            zoom=msg.zoom,
        )
        if not await self.host.tell(CUSTOMER, relayed):
            raise ProtocolError("The customer is not connected.", code="wrong_state")
        self._requests[request] = msg
        while len(self._requests) > _PENDING_REQUESTS:
            self._requests.pop(next(iter(self._requests)))
        self.host.event(
            "camera_request",
            by=by,
            request=request,
            action=msg.action,
            facing=msg.facing,
            on=msg.on,
            zoom=msg.zoom,
        )
        return {"request": request}

    async def _camera_result(self, msg: CameraResult) -> dict[str, Any]:
        asked = self._requests.pop(msg.request, None)
        if asked is None or asked.action != msg.action:
            raise ProtocolError("There is no such camera request.", code="wrong_state")
        if msg.ok and msg.action != "photo":
            self.camera = {"facing": msg.facing, "torch": msg.torch, "zoom": msg.zoom}
        fields = {
            "request": msg.request,
            "action": msg.action,
            "ok": msg.ok,
            "unsupported": msg.unsupported,
            "reason": msg.reason,
            "facing": msg.facing,
            "torch": msg.torch,
            "zoom": msg.zoom,
        }
        self.host.event("camera_result", by=CUSTOMER, **fields)
        # A phone that cannot zoom: the console offers the server's digital zoom.
        hint = msg.unsupported and msg.action == "zoom"
        await self.host.tell(
            TECHNICIAN,
            encode(
                Type.CAMERA_RESULT, session=self.host.id, digital_zoom=hint, **fields
            ),
        )
        return {}

    async def _zoom(self, by: str, msg: DigitalZoom) -> dict[str, Any]:
        if not 100 <= msg.factor <= MAX_ZOOM * 100 or msg.x > 100 or msg.y > 100:
            raise ProtocolError(
                f"Digital zoom is {100}-{round(MAX_ZOOM * 100)} percent, centre 0-100."
            )
        zoom = Zoom(msg.factor / 100, msg.x / 100, msg.y / 100)
        self.stage.zoom(zoom if msg.factor > 100 else None)
        self.host.event("digital_zoom", by=by, factor=msg.factor, x=msg.x, y=msg.y)
        await self._tell_state()
        return {}

    # freeze and annotate

    async def _freeze(self, by: str) -> dict[str, Any]:
        if self.still is not None or self._busy:
            raise ProtocolError("The picture is already frozen.", code="wrong_state")
        if self.paused:
            raise ProtocolError(
                "The customer has paused their camera.", code="wrong_state"
            )
        frame = self.stage.latest
        if frame is None:
            raise ProtocolError("No picture from the customer yet.", code="wrong_state")
        self._busy = True
        try:
            still = await self._keep(FileKind.STILL, frame, by)
        finally:
            self._busy = False
        self.still, self.strokes = still, []
        self.stage.freeze(frame)
        self.host.event(
            "freeze", by=by, file=still.name, width=still.width, height=still.height
        )
        await self._tell_state()
        await self._tell_files(still)
        return {"file": still.wire(self.host.id)}

    async def _unfreeze(self, by: str) -> dict[str, Any]:
        still = self._frozen()
        frame = self.stage.look.still
        strokes = tuple(self.strokes)
        annotated: SessionFile | None = None
        if strokes and frame is not None:
            png = await asyncio.to_thread(_annotated_png, frame, strokes)
            annotated = await asyncio.to_thread(
                self.files.add,
                FileKind.ANNOTATED,
                png,
                "image/png",
                by,
                frame.width,
                frame.height,
            )
        self.still, self.strokes = None, []
        self.stage.unfreeze()
        self.host.event(
            "unfreeze",
            by=by,
            still=still.name,
            annotated=annotated.name if annotated else None,
            strokes=[s.wire() for s in strokes],
        )
        await self._tell_state()
        if annotated is not None:
            await self._tell_files(annotated)
        return {}

    def _frozen(self) -> SessionFile:
        if self.still is None:
            raise ProtocolError(
                "Freeze the picture first: strokes go on a still.", code="wrong_state"
            )
        return self.still

    async def _stroke(self, by: str, msg: StrokeAdd) -> dict[str, Any]:
        self._frozen()
        shape = Shape(msg.shape)
        fewest, most = _POINTS[shape]
        count = len(msg.points) // 2
        if len(msg.points) % 2 or not fewest <= count <= most:
            raise ProtocolError(
                f"A {shape} takes {fewest}"
                + (f" to {most}" if most != fewest else "")
                + " points (x, y pairs)."
            )
        text = msg.text.strip()
        if shape == Shape.TEXT and not 0 < len(text) <= _MAX_TEXT_CHARS:
            raise ProtocolError(f"Text takes 1 to {_MAX_TEXT_CHARS} characters.")
        if len(self.strokes) >= self._config.max_strokes:
            raise ProtocolError(
                f"This still holds {self._config.max_strokes} strokes; clear some.",
                code="too_large",
            )
        self._ids += 1
        number = 0
        if shape == Shape.MARKER:
            number = 1 + sum(1 for s in self.strokes if s.shape == Shape.MARKER)
        pairs = msg.points
        stroke = Stroke(
            self._ids,
            shape,
            tuple(
                (pairs[i] / 10_000, pairs[i + 1] / 10_000)
                for i in range(0, len(pairs), 2)
            ),
            msg.colour,
            text if shape == Shape.TEXT else "",
            number,
        )
        self.strokes.append(stroke)
        self.stage.draw(tuple(self.strokes))
        self.host.event(
            "stroke", by=by, still=self._frozen().name, stroke=stroke.wire()
        )
        await self.host.tell(
            None, encode(Type.STROKE, session=self.host.id, stroke=stroke.wire())
        )
        return {"id": stroke.id}

    async def _erase(self, by: str, *, clear: bool) -> dict[str, Any]:
        still = self._frozen()
        if not self.strokes:
            raise ProtocolError("There is nothing to take back.", code="wrong_state")
        if clear:
            gone = [s.id for s in self.strokes]
            self.strokes = []
        else:
            gone = [self.strokes.pop().id]
        self.stage.draw(tuple(self.strokes))
        self.host.event("clear" if clear else "undo", by=by, still=still.name, ids=gone)
        await self._tell_state()
        return {"removed": gone}

    async def _pointer(self, by: str, msg: Pointer) -> dict[str, Any] | None:
        now = time.monotonic()
        if msg.on and now - self._pointer_at < _POINTER_MIN_GAP_S:
            return None
        self._pointer_at = now
        at = (msg.x / 10_000, msg.y / 10_000)
        if msg.on != self._pointer_on:
            self._pointer_on = msg.on
            self.host.event("pointer", by=by, shown=msg.on, x=at[0], y=at[1])
        frozen = self.still is not None
        if not frozen:
            self.stage.point(at if msg.on else None)
        # The technician points at the zoomed picture; the customer sees it all.
        wx, wy, ww, wh = (
            (0.0, 0.0, 1.0, 1.0) if frozen else zoom_window(self.stage.look.zoom)
        )
        await self.host.tell(
            CUSTOMER,
            encode(
                Type.POINTER,
                session=self.host.id,
                x=round(wx + at[0] * ww, 4),
                y=round(wy + at[1] * wh, 4),
                on=msg.on,
            ),
        )
        return None

    # files

    async def _keep(self, kind: FileKind, frame: av.VideoFrame, by: str) -> SessionFile:
        png = await asyncio.to_thread(frame_png, frame)
        return await asyncio.to_thread(
            self.files.add, kind, png, "image/png", by, frame.width, frame.height
        )

    async def _snapshot(self, by: str) -> dict[str, Any]:
        frame = self.stage.latest
        if frame is None:
            raise ProtocolError("No picture from the customer yet.", code="wrong_state")
        if self.paused:
            raise ProtocolError(
                "The customer has paused their camera.", code="wrong_state"
            )
        snap = await self._keep(FileKind.SNAPSHOT, frame, by)
        self.host.event(
            "snapshot", by=by, file=snap.name, width=snap.width, height=snap.height
        )
        await self._tell_files(snap)
        return {"file": snap.wire(self.host.id)}

    async def add_photo(self, data: bytes) -> SessionFile:
        """A full-resolution photo the customer's phone took (ImageCapture)."""
        mime = check_upload(data, IMAGE_TYPES, self._config.max_photo_bytes)
        width, height = await asyncio.to_thread(_image_size, data)
        photo = await asyncio.to_thread(
            self.files.add, FileKind.PHOTO, data, mime, CUSTOMER, width, height
        )
        self.host.event("photo", by=CUSTOMER, file=photo.name, size=photo.size)
        await self._tell_files(photo)
        return photo

    async def push_file(self, data: bytes, by: str) -> SessionFile:
        """An image or PDF the technician sends to the customer."""
        mime = check_upload(data, PUSH_TYPES, self._config.max_push_bytes)
        pushed = await asyncio.to_thread(
            self.files.add, FileKind.PUSHED, data, mime, by
        )
        self.host.event(
            "file_push",
            by=by,
            file=pushed.name,
            mime=mime,
            size=pushed.size,
        )
        await self._tell_files(pushed)
        return pushed

    # chat and privacy

    async def _say(self, role: str, name: str, text: str) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise ProtocolError("Say something first.")
        if len(text) > self._config.max_chat_chars:
            raise ProtocolError(
                f"Messages are up to {self._config.max_chat_chars} characters.",
                code="too_large",
            )
        now = time.monotonic()
        times = self._chat_times.setdefault(role, deque())
        while times and now - times[0] > 60:
            times.popleft()
        if len(times) >= self._config.chat_per_minute:
            raise ProtocolError(
                "You are sending messages too fast; wait a moment.", code="rate_limited"
            )
        times.append(now)
        self._ids += 1
        line = {
            "session": self.host.id,
            "id": self._ids,
            "role": role,
            "name": name,
            "text": text,
            "at": round(time.time(), 3),
        }
        self.chat.append(line)
        self.host.event("chat", by=f"{role}:{name}", text=text)
        await self.host.tell(None, encode(Type.SAID, **line))
        return {"id": line["id"]}

    async def _pause(self, paused: bool) -> dict[str, Any]:
        if paused == self.paused:
            return {}
        self.paused = paused
        self.stage.pause(PAUSED_SLATE if paused else "")
        self.host.event("camera_paused" if paused else "camera_resumed", by=CUSTOMER)
        await self._tell_state()
        return {}

    async def close(self) -> None:
        await self.stage.close()
        self._requests.clear()


def frame_png(frame: av.VideoFrame) -> bytes:
    """A decoded frame as a lossless PNG (RGB, its own size)."""
    ok, data = cv2.imencode(".png", bgr(frame))
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def _annotated_png(frame: av.VideoFrame, strokes: tuple[Stroke, ...]) -> bytes:
    image = bgr(frame)
    draw_strokes(image, strokes)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of an uploaded image (0, 0 when it does not decode)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return (0, 0)
    h, w = image.shape[:2]
    return (w, h)
