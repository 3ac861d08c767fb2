"""Browser-facing HTTP: one-tap link landing (/j/{token}), the console, static files.

A customer link opens the join page with a participant token for its session; the
link is bound to the first device (a cookie) that opens it. A login link is single
use: it signs a staff member in with an HttpOnly, SameSite=Strict cookie and
redirects to their console (a presenter's to the studio, a supervisor's to the
queue figures). A demo link opens the watch page of its room for anyone (it is
meant to be shared); a camera link makes the first device that opens it one more
camera of a room.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from server.config import Config
from server.errors import (
    AuthError,
    LinkError,
    NotFound,
    StoreUnavailable,
    TaplineError,
)
from server.links import Grant, Kind, LinkSigner
from server.rooms import STAFF_ROLES as ROOM_STAFF_ROLES
from server.rooms import RoomDirectory
from server.store import Store
from server.support import SupportDesk, new_session_id
from server.turn import ice_servers

__all__ = ["STAFF_COOKIE", "Pages", "staff_grant"]

logger = logging.getLogger(__name__)

STAFF_COOKIE = "tapline_staff"
DEVICE_COOKIE = "tapline_device"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

_LINK_STATUS = {
    "forged": 403,
    "wrong_kind": 403,
    "expired": 410,
    "revoked": 410,
    "used": 410,
    "other_device": 409,
}
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CSP_EMBEDDABLE = CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
"""The customer's page may sit in our own demo page (talk to an expert), no other."""


async def staff_grant(request: web.Request, signer: LinkSigner) -> Grant:
    """The signed-in staff member of this request, or AuthError."""
    cookie = request.cookies.get(STAFF_COOKIE, "")
    if not cookie:
        raise AuthError("Sign in with your staff link first.", code="not_signed_in")
    try:
        return await signer.check(cookie, Kind.STAFF)
    except LinkError:
        raise AuthError(
            "Your sign-in has expired. Use a new staff link.", code="not_signed_in"
        ) from None


def page(
    name: str, boot: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    """A static HTML page with an optional JSON boot block for its script."""
    text = (STATIC_DIR / name).read_text()
    if boot is not None:
        blob = json.dumps(boot).replace("<", "\\u003c")
        text = text.replace(
            "<!--boot-->", f'<script id="boot" type="application/json">{blob}</script>'
        )
    return web.Response(text=text, content_type="text/html", status=status)


def refusal(title: str, reason: str, status: int) -> web.Response:
    """A clear page that says why the visitor cannot go on."""
    text = (STATIC_DIR / "refused.html").read_text()
    text = text.replace("{title}", html.escape(title)).replace(
        "{reason}", html.escape(reason)
    )
    return web.Response(text=text, content_type="text/html", status=status)


def _refused(
    exc: TaplineError, title: str, status: int, wants_json: bool
) -> web.Response:
    logger.info("link refused: %s", exc.code)
    if wants_json:
        body = {"code": exc.code, "reason": exc.reason}
        return web.json_response(body, status=status)
    return refusal(title, exc.reason, status)


class Pages:
    def __init__(
        self,
        config: Config,
        signer: LinkSigner,
        store: Store,
        desk: SupportDesk,
        rooms: RoomDirectory | None = None,
    ) -> None:
        self._config = config
        self._signer = signer
        self._store = store
        self._desk = desk
        self._rooms = rooms
        self.placement: Callable[[str], Awaitable[str | None]] | None = None
        """Set with Redis: the origin of the node a session's media lives on, or
        None when it is this node."""
        self.room_placement: Callable[[str], Awaitable[str | None]] | None = None
        """Set with Redis: the origin of the node hosting a demo room not here."""

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self.home),
            web.get("/j/{token}", self.link),
            web.get("/console", self.console),
            web.get("/supervisor", self.supervisor),
            web.get("/studio", self.studio),
            web.post("/logout", self.logout),
            web.static("/static", STATIC_DIR),
        ]

    async def home(self, request: web.Request) -> web.Response:
        return page("home.html")

    async def link(self, request: web.Request) -> web.StreamResponse:
        wants_json = "application/json" in request.headers.get("Accept", "")
        try:
            grant = await self._signer.check(request.match_info["token"])
            if grant.kind == Kind.LOGIN:
                return await self._login(request, grant)
            if grant.kind in (Kind.DIRECT, Kind.SUPPORT):
                return await self._customer(request, grant, wants_json)
            if grant.kind in (Kind.DEMO, Kind.CAMERA) and self._rooms is not None:
                return await self._room_link(request, grant, wants_json)
            raise LinkError(
                f"This node does not serve {grant.kind} links yet.", code="wrong_kind"
            )
        except NotFound as exc:
            return _refused(exc, "This demo is not on", 410, wants_json)
        except StoreUnavailable as exc:
            return _refused(exc, "Please try again in a moment", 503, wants_json)
        except LinkError as exc:
            status = _LINK_STATUS.get(exc.code, 403)
            return _refused(exc, "This link cannot be used", status, wants_json)

    async def _login(self, request: web.Request, grant: Grant) -> web.StreamResponse:
        target = _landing(grant)
        try:
            await self._signer.burn(grant)
        except LinkError as exc:
            # The same person opening their used sign-in link again, still signed
            # in by it: take them where it leads instead of refusing.
            if exc.code == "used" and await self._signed_in_as(request, grant):
                return web.Response(status=303, headers={"Location": target})
            raise
        cookie, _ = self._signer.sign(
            Kind.STAFF,
            self._config.staff_session_ttl_s,
            name=grant.get("name"),
            role=grant.get("role", "technician"),
            queues=grant.scope.get("queues") or None,
            skills=grant.scope.get("skills") or None,
        )
        logger.info("staff %s signed in", grant.get("name"))
        response = web.Response(status=303, headers={"Location": target})
        response.set_cookie(
            STAFF_COOKIE,
            cookie,
            max_age=self._config.staff_session_ttl_s,
            httponly=True,
            samesite="Strict",
            secure=self._config.origin.startswith("https"),
            path="/",
        )
        return response

    async def _customer(
        self, request: web.Request, grant: Grant, wants_json: bool
    ) -> web.StreamResponse:
        ttl = max(60.0, grant.expires_at - self._signer.now())
        session_id = await self._store.claim(
            f"link:session:{grant.id}", new_session_id(), ttl
        )
        if self.placement is not None:
            # Several nodes: the customer goes to the node their media lives on
            # before anything is bound to their device here.
            origin = await self.placement(session_id)
            if origin is not None:
                return web.Response(
                    status=307, headers={"Location": origin + request.path_qs}
                )
        device = request.cookies.get(DEVICE_COOKIE, "")
        if not (8 <= len(device) <= 64 and device.isalnum()):
            device = secrets.token_hex(16)
        await self._signer.bind(grant, device)
        if session_id in self._desk.ended:
            raise LinkError(
                "This support session has ended. Ask for a new link if you need help "
                "again.",
                code="used",
            )
        customer = await self._store.claim(
            f"link:customer:{grant.id}", f"c-{secrets.token_hex(3)}", ttl
        )
        token, _ = self._signer.sign(
            Kind.PARTICIPANT,
            ttl,
            sid=session_id,
            pid=customer,
            tech=grant.get("technician"),
            link=grant.id,
            queue=grant.get("queue") if grant.kind == Kind.SUPPORT else "",
            skills=grant.scope.get("skills") or None,
            prio=grant.scope.get("prio") or None,
        )
        boot = {
            "token": token,
            "session": session_id,
            "technician": grant.get("technician"),
            "queue": grant.get("queue"),
            "recorded": self._config.record,
            "iceServers": ice_servers(self._config, customer),
        }
        response: web.StreamResponse
        response = web.json_response(boot) if wants_json else page("join.html", boot)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = CSP_EMBEDDABLE
        response.set_cookie(
            DEVICE_COOKIE,
            device,
            max_age=400 * 24 * 3600,
            httponly=True,
            samesite="Lax",
            secure=self._config.origin.startswith("https"),
            path="/",
        )
        return response

    async def console(self, request: web.Request) -> web.Response:
        try:
            grant = await staff_grant(request, self._signer)
        except AuthError as exc:
            return refusal("Sign in needed", exc.reason, 401)
        boot = {
            "name": grant.get("name"),
            "role": grant.get("role"),
            "iceServers": ice_servers(self._config, grant.get("name")),
        }
        response = page("console.html", boot)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _room_link(
        self, request: web.Request, grant: Grant, wants_json: bool
    ) -> web.StreamResponse:
        """A viewer (demo link) or a phone camera (camera link) of a room."""
        assert self._rooms is not None
        if grant.get("room") not in self._rooms.rooms and self.room_placement:
            origin = await self.room_placement(grant.get("room"))
            if origin is not None:
                return web.Response(
                    status=307, headers={"Location": origin + request.path_qs}
                )
        room = self._rooms.get(grant.get("room"))
        ttl = max(60.0, grant.expires_at - self._signer.now())
        ice = ice_servers(self._config, f"room-{grant.id}")
        device = ""
        if grant.kind == Kind.DEMO:
            token, _ = self._signer.sign(
                Kind.PARTICIPANT,
                ttl,
                room=room.id,
                role="viewer",
                name=f"Viewer {secrets.token_hex(2)}",
            )
            name, html_page = "", "watch.html"
        else:
            device = request.cookies.get(DEVICE_COOKIE, "")
            if not (8 <= len(device) <= 64 and device.isalnum()):
                device = secrets.token_hex(16)
            await self._signer.bind(grant, device)
            name = grant.get("name") or "Phone"
            token, _ = self._signer.sign(
                Kind.PARTICIPANT,
                ttl,
                room=room.id,
                role="camera",
                cam=f"p-{grant.id[:10]}",
                name=name,
            )
            html_page = "camera.html"
        boot = {
            "token": token,
            "room": room.id,
            "title": room.title,
            "name": name,
            "iceServers": ice,
        }
        response: web.StreamResponse
        response = web.json_response(boot) if wants_json else page(html_page, boot)
        response.headers["Cache-Control"] = "no-store"
        if device:
            response.set_cookie(
                DEVICE_COOKIE,
                device,
                max_age=400 * 24 * 3600,
                httponly=True,
                samesite="Lax",
                secure=self._config.origin.startswith("https"),
                path="/",
            )
        return response

    async def _signed_in_as(self, request: web.Request, login: Grant) -> bool:
        try:
            staff = await staff_grant(request, self._signer)
        except AuthError:
            return False
        return staff.get("name") == login.get("name") and staff.get(
            "role"
        ) == login.get("role", "technician")

    async def studio(self, request: web.Request) -> web.Response:
        try:
            grant = await staff_grant(request, self._signer)
        except AuthError as exc:
            return refusal("Sign in needed", exc.reason, 401)
        if grant.get("role") not in ROOM_STAFF_ROLES:
            return refusal(
                "Presenters only", "The studio is for presenters and admins.", 403
            )
        room = request.query.get("room", "")
        boot = {
            "name": grant.get("name"),
            "role": grant.get("role"),
            "room": room if room.isalnum() and len(room) <= 64 else "",
            "iceServers": ice_servers(self._config, grant.get("name")),
        }
        response = page("studio.html", boot)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def supervisor(self, request: web.Request) -> web.Response:
        try:
            grant = await staff_grant(request, self._signer)
        except AuthError as exc:
            return refusal("Sign in needed", exc.reason, 401)
        if grant.get("role") not in ("supervisor", "admin"):
            return refusal(
                "Supervisors only", "This page is for supervisors and admins.", 403
            )
        response = page("supervisor.html", {"name": grant.get("name")})
        response.headers["Cache-Control"] = "no-store"
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(status=303, headers={"Location": "/"})
        response.del_cookie(STAFF_COOKIE, path="/")
        return response


def _landing(grant: Grant) -> str:
    """Where a staff member's sign-in link leads, by role."""
    if grant.get("role") == "presenter" or grant.get("room"):
        room = grant.get("room")
        return f"/studio?room={room}" if room.isalnum() else "/studio"
    return {"trainer": "/library", "supervisor": "/supervisor"}.get(
        grant.get("role"), "/console"
    )


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Permissions-Policy", "camera=(self), microphone=(self)"
    )
    return response
