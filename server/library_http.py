"""The trainers' HTTP surface: the library page, the player, media and the JSON API.

Every route here needs a trainer or admin: a staff cookie with one of those roles,
or the admin bearer key. Anything else that presents a token (a customer's or
viewer's, a technician's sign-in, a wrong key) gets 403; no credentials at all
get 401. Recordings are addressed by their unguessable key, never by session id
or path, and snapshot names are checked against one pattern and resolved inside
the recording's own directory.

Media is served by aiohttp's `FileResponse` (sendfile, ``Accept-Ranges``, one
range per request, 416 when unsatisfiable); the ``Range`` header is checked here
first and anything but one well-formed byte range is refused with 416.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from recorder import TIMELINE_NAME, VIDEO_NAME, read_timeline
from recorder.previews import STRIP_NAME, THUMB_NAME, read_previews
from server.api import _json_body as json_body
from server.config import Config
from server.errors import AuthError, LinkError, NotFound, ProtocolError
from server.library import Filters, Library, RecordingInfo
from server.links import Kind, LinkSigner
from server.pages import STAFF_COOKIE, page, refusal

__all__ = ["LibraryHttp", "Reader"]

logger = logging.getLogger(__name__)

LIBRARY_ROLES = frozenset({"trainer", "admin"})
SNAPSHOTS_DIR = "files"
"""Where a session keeps its stills, snapshots and photos (server/files.py)."""
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,80}\.(?:jpg|jpeg|png)")
MAX_TIMELINE_EVENTS = 20_000
_RANGE = re.compile(r"bytes=(\d{0,15})-(\d{0,15})")
_MAX_RANGE_HEADER = 64
_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Reader:
    """Who is looking at the library: a trainer or an admin."""

    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class LibraryHttp:
    def __init__(
        self, config: Config, signer: LinkSigner, library: Library, admin_key: str
    ) -> None:
        self._config = config
        self._signer = signer
        self._library = library
        self._admin_key = admin_key
        self._exports = asyncio.Semaphore(1)

    def routes(self) -> list[web.RouteDef]:
        api = "/api/library"
        media = "/library/media/{key}"
        return [
            web.get("/library", self.library_page),
            web.get("/player/{key}", self.player_page),
            web.get(f"{media}/video.mp4", self.video),
            web.get(f"{media}/thumb.jpg", self.thumb),
            web.get(f"{media}/strip.jpg", self.strip),
            web.get(f"{media}/snapshots/{{name}}", self.snapshot),
            web.get(f"{media}/clip.mp4", self.clip),
            web.get(f"{api}/recordings", self.recordings),
            web.get(f"{api}/recordings/{{key}}", self.recording),
            web.delete(f"{api}/recordings/{{key}}", self.delete),
            web.get(f"{api}/recordings/{{key}}/export.json", self.export_json),
            web.post(f"{api}/recordings/{{key}}/bookmarks", self.add_bookmark),
            web.delete(
                f"{api}/recordings/{{key}}/bookmarks/{{id}}", self.delete_bookmark
            ),
            web.post(f"{api}/recordings/{{key}}/scores", self.add_score),
            web.get(f"{api}/forms", self.forms),
            web.post(f"{api}/forms", self.create_form),
            web.get(f"{api}/trend", self.trend),
            web.get(f"{api}/audit", self.audit),
            web.post(f"{api}/rescan", self.rescan),
        ]

    # who is asking

    async def _reader(self, request: web.Request, changes: bool = False) -> Reader:
        header = request.headers.get("Authorization", "")
        if header:
            key = header[7:].strip() if header.startswith("Bearer ") else ""
            if key and hmac.compare_digest(key, self._admin_key):
                return Reader("admin-key", "admin")
            raise AuthError("Recordings are for trainers and admins.", code="forbidden")

        cookie = request.cookies.get(STAFF_COOKIE, "")
        if not cookie:
            if "token" in request.query:
                raise AuthError("A link does not open recordings.", code="forbidden")
            raise AuthError(
                "Sign in with your trainer link first.", code="not_signed_in"
            )
        try:
            grant = await self._signer.check(cookie, Kind.STAFF)
        except LinkError as exc:
            if exc.code == "expired":
                raise AuthError(
                    "Your sign-in has expired. Use a new link.", code="not_signed_in"
                ) from None
            raise AuthError(
                "Recordings are for trainers and admins.", code="forbidden"
            ) from None
        if grant.get("role") not in LIBRARY_ROLES:
            raise AuthError("Recordings are for trainers and admins.", code="forbidden")

        if changes:
            origin = request.headers.get("Origin")
            expected = f"{request.scheme}://{request.host}"
            if origin is None or origin not in (expected, self._config.origin):
                raise AuthError("Cross-site request refused.", code="forbidden")
        return Reader(grant.get("name"), grant.get("role"))

    async def _found(self, request: web.Request) -> tuple[Reader, RecordingInfo]:
        reader = await self._reader(
            request, changes=request.method not in ("GET", "HEAD")
        )
        return reader, await self._library.get(request.match_info["key"])

    # pages

    async def library_page(self, request: web.Request) -> web.Response:
        try:
            reader = await self._reader(request)
        except AuthError as exc:
            return _refused(exc)
        boot = {"name": reader.name, "role": reader.role}
        return _private(page("library.html", boot))

    async def player_page(self, request: web.Request) -> web.Response:
        try:
            reader, info = await self._found(request)
        except AuthError as exc:
            return _refused(exc)
        except NotFound as exc:
            return refusal("No such recording", exc.reason, 404)
        await self._library.audit(reader.name, "view", info.id)
        boot = {"name": reader.name, "role": reader.role, "key": info.key}
        return _private(page("player.html", boot))

    # media

    async def video(self, request: web.Request) -> web.StreamResponse:
        _, info = await self._found(request)
        if not info.has_video:
            raise NotFound("This recording has no video.")
        path = self._library.recordings_dir / info.id / VIDEO_NAME
        _check_range(request, path)
        return _file(path, "video/mp4")

    async def thumb(self, request: web.Request) -> web.StreamResponse:
        _, info = await self._found(request)
        return _file(self._library.recordings_dir / info.id / THUMB_NAME, "image/jpeg")

    async def strip(self, request: web.Request) -> web.StreamResponse:
        _, info = await self._found(request)
        return _file(self._library.recordings_dir / info.id / STRIP_NAME, "image/jpeg")

    async def snapshot(self, request: web.Request) -> web.StreamResponse:
        _, info = await self._found(request)
        name = request.match_info["name"]
        if not SNAPSHOT_NAME.fullmatch(name):
            raise NotFound("There is no such snapshot.")
        folder = (self._library.recordings_dir / info.id / SNAPSHOTS_DIR).resolve()
        path = (folder / name).resolve()
        if path.parent != folder:
            raise NotFound("There is no such snapshot.")
        kind = "image/png" if name.endswith(".png") else "image/jpeg"
        return _file(path, kind)

    async def clip(self, request: web.Request) -> web.StreamResponse:
        """A time range as MP4, cut at keyframes, packets copied (no re-encode)."""
        reader, info = await self._found(request)
        if not info.has_video:
            raise NotFound("This recording has no video.")
        start = _seconds(request.query.get("start", ""), "start")
        end = _seconds(request.query.get("end", ""), "end")
        if not 0 <= start < end or end - start > self._config.max_clip_s:
            raise ProtocolError(
                f"A clip needs 0 <= start < end, at most "
                f"{self._config.max_clip_s:g} s.",
                code="bad_request",
            )
        folder = self._config.data_dir / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(suffix=".mp4", dir=folder)
        os.close(handle)  # PyAV writes the file by name
        target = Path(name)
        try:
            async with self._exports:  # one export at a time: it is disk-bound
                clip = await self._library.export_clip(info, target, start, end)
            await self._library.audit(
                reader.name,
                "export",
                info.id,
                f"clip {clip.start_s:.3f}-{clip.end_s:.3f} s",
            )
            response = web.StreamResponse(
                headers={
                    "Content-Type": "video/mp4",
                    "Content-Disposition": (
                        f'attachment; filename="{info.id}-{start:g}-{end:g}.mp4"'
                    ),
                    "X-Clip-Start": f"{clip.start_s:.3f}",
                    "X-Clip-End": f"{clip.end_s:.3f}",
                    "Cache-Control": "no-store",
                }
            )
            response.content_length = target.stat().st_size
            await response.prepare(request)
            with target.open("rb") as file:
                while chunk := await asyncio.to_thread(file.read, _CHUNK_BYTES):
                    await response.write(chunk)
            await response.write_eof()
            return response
        except ValueError as exc:
            logger.info("recording %s: clip refused: %s", info.id, exc)
            raise ProtocolError(
                "There is no video to cut in that range.", code="bad_request"
            ) from None
        finally:
            target.unlink(missing_ok=True)

    # the API

    async def recordings(self, request: web.Request) -> web.Response:
        await self._reader(request)
        query = request.query
        filters = Filters(
            kind=_word(query.get("kind", "")),
            staff=_word(query.get("staff", "")),
            queue=_word(query.get("queue", "")),
            disposition=_word(query.get("disposition", "")),
            since=_optional_time(query.get("since", "")),
            until=_optional_time(query.get("until", ""), whole_day=True),
            text=query.get("q", "")[:200],
        )
        limit = _int(query.get("limit", "50"), "limit")
        found, cursor = await self._library.page(
            filters, limit=limit, cursor=query.get("cursor", "")[:200]
        )
        return _json(
            {"recordings": [_listed(info) for info in found], "next": cursor or None}
        )

    async def recording(self, request: web.Request) -> web.Response:
        _, info = await self._found(request)
        return _json(await self._detail(info))

    async def _detail(self, info: RecordingInfo) -> dict[str, Any]:
        directory = self._library.recordings_dir / info.id
        events, previews, snapshots = await asyncio.to_thread(_files_of, directory)
        return {
            **_listed(info),
            "timeline": events,
            "bookmarks": await self._library.bookmarks(info),
            "scores": await self._library.scores(info),
            "strip": (
                {
                    "url": f"/library/media/{info.key}/strip.jpg",
                    "times": previews.strip_times,
                    "tile_width": previews.tile_width,
                    "tile_height": previews.tile_height,
                }
                if previews is not None
                else None
            ),
            "snapshots": [
                {**snap, "url": f"/library/media/{info.key}/snapshots/{snap['file']}"}
                for snap in snapshots
            ],
        }

    async def export_json(self, request: web.Request) -> web.Response:
        reader, info = await self._found(request)
        detail = await self._detail(info)
        await self._library.audit(reader.name, "export", info.id, "json")
        response = _json(detail)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{info.id}.json"'
        )
        return response

    async def delete(self, request: web.Request) -> web.Response:
        reader, info = await self._found(request)
        if not reader.admin:
            raise AuthError("Only admins delete recordings.", code="forbidden")
        await self._library.delete(info, reader.name, "deleted by an admin")
        return _json({"id": info.id, "deleted": True})

    async def add_bookmark(self, request: web.Request) -> web.Response:
        reader, info = await self._found(request)
        body = await json_body(request)
        t = body.get("t")
        text = body.get("body")
        if not isinstance(t, int | float) or isinstance(t, bool):
            raise ProtocolError(
                "'t' must be seconds into the video.", code="bad_request"
            )
        if not isinstance(text, str):
            raise ProtocolError("'body' must be text.", code="bad_request")
        mark = await self._library.add_bookmark(info, float(t), text, reader.name)
        return _json(mark, status=201)

    async def delete_bookmark(self, request: web.Request) -> web.Response:
        reader, info = await self._found(request)
        bookmark = _int(request.match_info["id"], "id")
        await self._library.delete_bookmark(info, bookmark, reader.name, reader.admin)
        return _json({"id": bookmark, "deleted": True})

    async def add_score(self, request: web.Request) -> web.Response:
        reader, info = await self._found(request)
        body = await json_body(request)
        form = body.get("form")
        comment = body.get("comment", "")
        if not isinstance(form, int) or isinstance(form, bool):
            raise ProtocolError("'form' must be a form id.", code="bad_request")
        if not isinstance(comment, str):
            raise ProtocolError("'comment' must be text.", code="bad_request")
        result = await self._library.add_score(
            info, form, body.get("answers"), reader.name, comment
        )
        await self._library.audit(
            reader.name, "score", info.id, f"form {form}: {result['score']}"
        )
        return _json(result, status=201)

    async def forms(self, request: web.Request) -> web.Response:
        await self._reader(request)
        return _json({"forms": await self._library.forms()})

    async def create_form(self, request: web.Request) -> web.Response:
        reader = await self._reader(request, changes=True)
        if not reader.admin:
            raise AuthError("Only admins define scorecard forms.", code="forbidden")
        body = await json_body(request)
        form = await self._library.create_form(
            body.get("name", ""), body.get("criteria"), reader.name
        )
        await self._library.audit(reader.name, "form", "", f"form {form}")
        return _json({"id": form}, status=201)

    async def trend(self, request: web.Request) -> web.Response:
        await self._reader(request)
        technician = _word(request.query.get("technician", ""))
        weeks = _int(request.query.get("weeks", "8"), "weeks")
        if not technician:
            return _json({"technicians": await self._library.staff_names()})
        return _json(
            {
                "technician": technician,
                "weeks": await self._library.trend(technician, weeks),
            }
        )

    async def audit(self, request: web.Request) -> web.Response:
        reader = await self._reader(request)
        if not reader.admin:
            raise AuthError("Only admins read the audit log.", code="forbidden")
        before = request.query.get("before", "")
        entries = await self._library.audit_log(
            limit=_int(request.query.get("limit", "100"), "limit"),
            before=_int(before, "before") if before else None,
        )
        return _json({"entries": entries})

    async def rescan(self, request: web.Request) -> web.Response:
        reader = await self._reader(request, changes=True)
        if not reader.admin:
            raise AuthError("Only admins rescan the library.", code="forbidden")
        indexed = await self._library.rescan(full=True)
        return _json({"indexed": len(indexed)})


def _files_of(
    directory: Path,
) -> tuple[list[dict[str, Any]], Any, list[dict[str, Any]]]:
    """The timeline, previews and snapshots of a recording (on a worker thread)."""
    path = directory / TIMELINE_NAME
    events = read_timeline(path)[:MAX_TIMELINE_EVENTS] if path.exists() else []
    previews = read_previews(directory)

    snapshots: list[dict[str, Any]] = []
    times = {
        str(e.get("file")): float(e["t"])
        for e in events
        if isinstance(e.get("file"), str) and isinstance(e.get("t"), int | float)
    }
    folder = directory / SNAPSHOTS_DIR
    if folder.is_dir():
        for file in sorted(folder.iterdir()):
            if SNAPSHOT_NAME.fullmatch(file.name) and file.is_file():
                snapshots.append({"file": file.name, "t": times.get(file.name)})
    return events, previews, snapshots


def _listed(info: RecordingInfo) -> dict[str, Any]:
    media = f"/library/media/{info.key}"
    return {
        **info.wire(),
        "player": f"/player/{info.key}",
        "video": f"{media}/video.mp4" if info.has_video else None,
        "thumbnail": f"{media}/thumb.jpg" if info.thumb else None,
    }


def _check_range(request: web.Request, path: Path) -> None:
    """One well-formed byte range, or none; anything else is unsatisfiable."""
    header = request.headers.get("Range")
    if header is None:
        return
    match = (
        _RANGE.fullmatch(header.strip()) if len(header) <= _MAX_RANGE_HEADER else None
    )
    if match is not None:
        start, end = match.groups()
        reversed_ = bool(start and end and int(start) > int(end))
        empty = not start and (not end or int(end) == 0)  # no range, or suffix 0
        if not (reversed_ or empty):
            return
    try:
        size = path.stat().st_size
    except OSError:
        raise NotFound("That file is not in this recording.") from None
    raise web.HTTPRequestRangeNotSatisfiable(
        headers={"Content-Range": f"bytes */{size}"}
    )


def _file(path: Path, content_type: str) -> web.FileResponse:
    if not path.is_file():
        raise NotFound("That file is not in this recording.")
    response = web.FileResponse(path)
    response.content_type = content_type
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    response = web.json_response(body, status=status, dumps=json.dumps)
    response.headers["Cache-Control"] = "no-store"
    return response


def _private(response: web.Response) -> web.Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(exc: AuthError) -> web.Response:
    if exc.code == "not_signed_in":
        return refusal("Sign in needed", exc.reason, 401)
    return refusal("Trainers only", exc.reason, 403)


def _word(value: str) -> str:
    if len(value) > 64:
        raise ProtocolError(
            "A filter value is at most 64 characters.", code="bad_request"
        )
    return value.strip()


def _int(value: str, name: str) -> int:
    if not re.fullmatch(r"\d{1,9}", value):
        raise ProtocolError(f"'{name}' must be a whole number.", code="bad_request")
    return int(value)


def _seconds(value: str, name: str) -> float:
    if not re.fullmatch(r"\d{1,6}(?:\.\d{1,3})?", value):
        raise ProtocolError(f"'{name}' must be seconds, e.g. 12.5.", code="bad_request")
    return float(value)


def _optional_time(value: str, whole_day: bool = False) -> float | None:
    """Unix seconds, or a date YYYY-MM-DD: its UTC midnight, or the next one."""
    if not value:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        except ValueError:
            raise ProtocolError("Bad date.", code="bad_request") from None
        return day.timestamp() + (24 * 3600 if whole_day else 0)
    if re.fullmatch(r"\d{1,12}(?:\.\d{1,3})?", value):
        return float(value)
    raise ProtocolError("Times are YYYY-MM-DD or Unix seconds.", code="bad_request")
