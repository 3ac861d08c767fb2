"""HTTP for a support session's files: the console's gallery, downloads, uploads.

    GET  /api/sessions/{sid}/files          staff: the session's files (JSON)
    GET  /api/sessions/{sid}/files/{name}   staff: any; customer: stills and pushed
    POST /api/sessions/{sid}/files          staff: push an image or PDF to the customer
    POST /api/sessions/{sid}/photo          customer: a full-resolution phone photo

Staff are the session's technician, supervisors and admins, by the staff cookie (or
the admin key); a cookie request that changes something must come from our origin.
The customer proves who they are with their participant token as a bearer token,
since it is scoped to exactly this session. File names are unguessable and are
checked against a strict pattern before any path is built. Upload bodies are the
raw file (no multipart), read up to the limit and sniffed by their first bytes.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from server.config import Config
from server.errors import AuthError, FileRefused, LinkError, NotFound
from server.files import CUSTOMER_KINDS, file_path
from server.links import Kind, LinkSigner
from server.pages import staff_grant
from server.support import SupportDesk, SupportSession

__all__ = ["Gallery"]

logger = logging.getLogger(__name__)

_SUPERVISING = ("supervisor", "admin")


class Gallery:
    def __init__(
        self, config: Config, signer: LinkSigner, desk: SupportDesk, admin_key: str
    ) -> None:
        self._config = config
        self._signer = signer
        self._desk = desk
        self._admin_key = admin_key

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/sessions/{sid}/files", self.list_files),
            web.get("/api/sessions/{sid}/files/{name}", self.download),
            web.post("/api/sessions/{sid}/files", self.push),
            web.post("/api/sessions/{sid}/photo", self.photo),
        ]

    # who is asking

    async def _customer(self, request: web.Request, sid: str) -> bool:
        """True for the session's customer (bearer participant token)."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[7:].strip()
        if hmac.compare_digest(token, self._admin_key):
            return False
        try:
            grant = await self._signer.check(token, Kind.PARTICIPANT)
        except LinkError:
            raise AuthError("This token does not open this session.") from None
        if grant.get("sid") != sid:
            raise AuthError("This token does not open this session.")
        return True

    async def _staff(self, request: web.Request, sid: str, changes: bool) -> str:
        """The staff member's name ('admin' for the key), or AuthError."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(
            header[7:].strip(), self._admin_key
        ):
            return "admin"
        grant = await staff_grant(request, self._signer)
        if changes:
            origin = request.headers.get("Origin")
            if origin not in (
                f"{request.scheme}://{request.host}",
                self._config.origin,
            ):
                raise AuthError("Cross-site request refused.")
        name = grant.get("name")
        if grant.get("role") in _SUPERVISING:
            return name
        live = self._desk.sessions.get(sid)
        owner = live.technician if live else self._desk.ended_by_technician.get(sid)
        if owner != name:
            raise AuthError("This session is not yours.")
        return name

    def _live(self, sid: str) -> SupportSession:
        return self._desk.get(sid)

    # routes

    async def list_files(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        await self._staff(request, sid, changes=False)
        session = self._desk.sessions.get(sid)
        if session is None:
            directory = self._config.recordings_dir / sid / "files"
            if not sid.isalnum() or not directory.is_dir():
                raise NotFound("There is no such session.")
            names = sorted(p.name for p in directory.iterdir() if p.suffix != ".part")
            files: list[dict[str, Any]] = [
                {"name": n, "url": f"/api/sessions/{sid}/files/{n}"} for n in names
            ]
        else:
            files = [f.wire(sid) for f in session.tools.files.files]
        return web.json_response({"session": sid, "files": files})

    async def download(self, request: web.Request) -> web.StreamResponse:
        sid, name = request.match_info["sid"], request.match_info["name"]
        path, kind, mime = file_path(self._config.recordings_dir, sid, name)
        if await self._customer(request, sid):
            if kind not in CUSTOMER_KINDS:
                raise AuthError("This file is for the technician only.")
        else:
            await self._staff(request, sid, changes=False)
        disposition = "attachment" if request.query.get("download") else "inline"
        return web.FileResponse(
            path,
            headers={
                "Content-Type": mime,
                "Content-Disposition": f'{disposition}; filename="{name}"',
                "Cache-Control": "private, no-store",
            },
        )

    async def push(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        by = await self._staff(request, sid, changes=True)
        session = self._live(sid)
        data = await _body(request, self._config.max_push_bytes)
        pushed = await session.tools.push_file(data, f"technician:{by}")
        logger.info("session %s: %s pushed %s", sid, by, pushed.name)
        return web.json_response(pushed.wire(sid), status=201)

    async def photo(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if not await self._customer(request, sid):
            raise AuthError("Only the customer's phone sends photos.")
        session = self._live(sid)
        data = await _body(request, self._config.max_photo_bytes)
        photo = await session.tools.add_photo(data)
        return web.json_response(photo.wire(sid), status=201)


async def _body(request: web.Request, limit: int) -> bytes:
    """The raw request body, refused as soon as it is over `limit` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise FileRefused(
            f"The file is {declared} bytes; the limit is {limit} bytes.",
            code="too_large",
        )
    chunks: list[bytes] = []
    total = 0
    while chunk := await request.content.read(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise FileRefused(
                f"The file is over the limit of {limit} bytes.", code="too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)
