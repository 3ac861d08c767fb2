"""REST for operators and consoles: links, sessions, health, metrics, OpenAPI.

`/api/*` takes either ``Authorization: Bearer <admin key>`` (operators, scripts) or a
staff cookie (consoles). Cookie-authenticated requests that change state must come
from our own pages (`server.guard.from_our_pages`) so that another site cannot make
them.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qrcode
import qrcode.image.svg
from aiohttp import web

from server.config import Config
from server.errors import AuthError, ProtocolError, TaplineError
from server.guard import from_our_pages
from server.links import STAFF_ROLES, Grant, Kind, LinkSigner
from server.messages import schema
from server.metrics import Metrics
from server.pages import staff_grant
from server.support import SupportDesk
from server.switchboard import Switchboard

__all__ = ["Api", "error_middleware"]

logger = logging.getLogger(__name__)

OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"
_MAX_BODY_BYTES = 16 * 1024
_MAX_LINK_TTL_S = 30 * 24 * 3600
_STATUS_BY_CODE = {"not_signed_in": 401, "too_large": 413}


def qr_svg(text: str) -> str:
    """The text as an SVG QR code (made here: no outside service sees the link)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode()


class Api:
    def __init__(
        self,
        config: Config,
        signer: LinkSigner,
        desk: SupportDesk,
        switchboard: Switchboard,
        metrics: Metrics,
        admin_key: str,
    ) -> None:
        self._config = config
        self._signer = signer
        self._desk = desk
        self._switchboard = switchboard
        self._metrics = metrics
        self._admin_key = admin_key
        self.cluster_figures: Callable[[], dict[str, Any]] | None = None
        """Set with Redis: this node's view of the cluster, shown in /healthz."""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/links", self.create_link),
            web.delete("/api/links/{id}", self.revoke_link),
            web.get("/api/sessions", self.sessions),
            web.get("/api/routing", self.routing),
            web.get("/api/openapi.json", self.openapi),
            web.get("/api/schema.json", self.schema),
            web.get("/healthz", self.health),
            web.get("/metrics", self.prometheus),
        ]

    async def _caller(self, request: web.Request, changes: bool) -> Grant | None:
        """None for the admin key; the staff grant for a console; else AuthError."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            if hmac.compare_digest(header[7:].strip(), self._admin_key):
                return None
            raise AuthError("The API key is not valid.", code="forbidden")
        grant = await staff_grant(request, self._signer)
        if changes and not from_our_pages(request, self._config):
            raise AuthError("Cross-site request refused.", code="forbidden")
        return grant

    async def create_link(self, request: web.Request) -> web.Response:
        caller = await self._caller(request, changes=True)
        body = await _json_body(request)
        try:
            kind = Kind(str(body.get("kind", "")))
        except ValueError:
            raise ProtocolError(
                "'kind' must be one of: direct, support, login.", code="bad_request"
            ) from None
        ttl = body.get("ttl_s")
        if ttl is not None and not (
            isinstance(ttl, int) and 60 <= ttl <= _MAX_LINK_TTL_S
        ):
            raise ProtocolError(
                f"'ttl_s' must be whole seconds from 60 to {_MAX_LINK_TTL_S}.",
                code="bad_request",
            )
        scope: dict[str, str] = {}
        scope_extra: dict[str, Any] = {}
        if kind == Kind.DIRECT:
            technician = _name(body, "technician", required=caller is None)
            if caller is not None:
                if technician and technician != caller.get("name"):
                    raise AuthError(
                        "You can make links to yourself only.", code="forbidden"
                    )
                technician = caller.get("name")
            scope["technician"] = technician
            default_ttl = self._config.customer_link_ttl_s
        elif kind == Kind.SUPPORT and caller is None:
            queue = _name(body, "queue", required=True)
            if queue not in self._config.queues:
                raise ProtocolError(
                    f"'queue' must be one of: {', '.join(self._config.queues)}.",
                    code="bad_request",
                )
            scope["queue"] = queue
            scope_extra = {"skills": _skills(body), "prio": _priority(body)}
            default_ttl = self._config.customer_link_ttl_s
        elif kind == Kind.LOGIN and caller is None:
            scope["name"] = _name(body, "name", required=True)
            role = str(body.get("role", "technician"))
            if role not in STAFF_ROLES:
                raise ProtocolError(
                    f"'role' must be one of: {', '.join(sorted(STAFF_ROLES))}.",
                    code="bad_request",
                )
            scope["role"] = role
            queues = body.get("queues", [])
            if not (
                isinstance(queues, list)
                and all(isinstance(q, str) and q in self._config.queues for q in queues)
            ):
                raise ProtocolError(
                    "'queues' must list queue names this node has.", code="bad_request"
                )
            scope_extra = {"queues": queues, "skills": _skills(body)}
            default_ttl = self._config.login_link_ttl_s
        else:
            raise AuthError(f"You cannot make {kind} links here.", code="forbidden")

        token, grant = self._signer.sign(
            kind,
            ttl or default_ttl,
            **scope,
            **{k: v for k, v in scope_extra.items() if v},
        )
        url = f"{self._config.origin}/j/{token}"
        logger.info("link %s (%s) created", grant.id, kind)
        return web.json_response(
            {
                "url": url,
                "id": grant.id,
                "kind": str(kind),
                "expires_at": grant.expires_at,
                "qr_svg": qr_svg(url),
            },
            status=201,
        )

    async def revoke_link(self, request: web.Request) -> web.Response:
        await self._caller(request, changes=True)
        link_id = request.match_info["id"]
        if not (1 <= len(link_id) <= 32):
            raise ProtocolError("Bad link id.", code="bad_request")
        await self._signer.revoke(link_id, _MAX_LINK_TTL_S)
        logger.info("link %s revoked", link_id)
        return web.json_response({"id": link_id, "revoked": True})

    async def sessions(self, request: web.Request) -> web.Response:
        caller = await self._caller(request, changes=False)
        found = [
            s.summary()
            for s in self._desk.sessions.values()
            if caller is None or s.technician == caller.get("name")
        ]
        return web.json_response({"sessions": found})

    async def routing(self, request: web.Request) -> web.Response:
        """Live queue figures and technician states, for the supervisor page."""
        caller = await self._caller(request, changes=False)
        if caller is not None and caller.get("role") not in ("supervisor", "admin"):
            raise AuthError("Supervisors only.", code="forbidden")
        board = self._switchboard
        await board.refresh_figures()
        now = board.router.clock()
        return web.json_response(
            {
                "queues": list(board.figures.values()),
                "technicians": [
                    {
                        "name": p.name,
                        "status": str(p.status),
                        "in_status_s": round(now - p.since, 1),
                        "queues": p.queues,
                        "sessions_today": p.sessions_today,
                    }
                    for p in board.technicians
                ],
            }
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(json.loads(OPENAPI_FILE.read_text()))

    async def schema(self, request: web.Request) -> web.Response:
        return web.json_response(schema())

    async def health(self, request: web.Request) -> web.Response:
        health: dict[str, Any] = {"status": "ok", "sessions": len(self._desk.sessions)}
        if self.cluster_figures is not None:
            health["cluster"] = self.cluster_figures()
            if health["cluster"]["store"] != "up":
                # Running sessions go on; new ones are refused until Redis is back.
                health["status"] = "degraded"
        return web.json_response(health)

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self._metrics.render(), content_type="text/plain", charset="utf-8"
        )


def _skills(body: dict[str, Any]) -> dict[str, int]:
    """Skills as {name: level}, e.g. {"lang:zh-HK": 1, "product:espresso": 3}."""
    skills = body.get("skills", {})
    if not (
        isinstance(skills, dict)
        and len(skills) <= 20
        and all(
            isinstance(k, str)
            and 0 < len(k) <= 64
            and isinstance(v, int)
            and not isinstance(v, bool)
            and 0 <= v <= 10
            for k, v in skills.items()
        )
    ):
        raise ProtocolError(
            "'skills' must map up to 20 skill names to levels 0-10.", code="bad_request"
        )
    return skills


def _priority(body: dict[str, Any]) -> int:
    value = body.get("priority", 0)
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9):
        raise ProtocolError(
            "'priority' must be a whole number 0-9.", code="bad_request"
        )
    return value


def _name(body: dict[str, Any], field: str, *, required: bool) -> str:
    value = body.get(field, "")
    if not isinstance(value, str) or len(value) > 64:
        raise ProtocolError(f"'{field}' must be a short string.", code="bad_request")
    if required and not value.strip():
        raise ProtocolError(f"'{field}' is required.", code="bad_request")
    return value.strip()


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > _MAX_BODY_BYTES:
        raise ProtocolError("Request body too large.", code="too_large")
    raw = await request.content.read(_MAX_BODY_BYTES + 1)
    if len(raw) > _MAX_BODY_BYTES:
        raise ProtocolError("Request body too large.", code="too_large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ProtocolError("The body is not valid JSON.", code="bad_json") from None
    if not isinstance(body, dict):
        raise ProtocolError("The body must be a JSON object.", code="bad_json")
    return body


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """`TaplineError` from an API route becomes JSON {code, reason} with its status."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except TaplineError as exc:
        status = _STATUS_BY_CODE.get(exc.code, exc.http_status)
        return web.json_response(
            {"code": exc.code, "reason": exc.reason}, status=status
        )
