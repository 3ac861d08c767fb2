"""One-tap links and the tokens behind them: signed, scoped, expiring.

A token is ``<payload>.<signature>``, both base64url: the payload is compact JSON
with the kind, a unique id, the expiry (Unix seconds) and the scope (role, target);
the signature is HMAC-SHA256 over the payload with the server secret. Revocation,
single use and device binding live in the Store, keyed by the token id.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.errors import LinkError
from server.store import Store

__all__ = ["Grant", "Kind", "LinkSigner"]

_MAX_TOKEN_CHARS = 2048


class Kind(enum.StrEnum):
    SUPPORT = "support"
    DIRECT = "direct"
    DEMO = "demo"
    CAMERA = "camera"
    LOGIN = "login"
    PARTICIPANT = "participant"
    STAFF = "staff"


LINK_KINDS = frozenset({Kind.SUPPORT, Kind.DIRECT, Kind.DEMO, Kind.CAMERA, Kind.LOGIN})
STAFF_ROLES = frozenset({"technician", "presenter", "trainer", "supervisor", "admin"})


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    kind: Kind
    id: str
    expires_at: int
    scope: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        value = self.scope.get(name, default)
        return str(value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Signs and verifies tokens; checks revocation and single use in the Store."""

    def __init__(
        self, secret: str, store: Store, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the link secret must be at least 16 characters")
        self._key = hashlib.sha256(b"tapline-links\0" + secret.encode()).digest()
        self._store = store
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def sign(self, kind: Kind, ttl_s: float, **scope: Any) -> tuple[str, Grant]:
        grant = Grant(
            kind=kind,
            id=secrets.token_urlsafe(9),
            expires_at=int(self._clock() + ttl_s),
            scope={k: v for k, v in scope.items() if v not in (None, "")},
        )
        body = {"k": str(kind), "i": grant.id, "e": grant.expires_at, **grant.scope}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}", grant

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()
        return _b64(digest[:20])

    def verify(self, token: str, *kinds: Kind, expired_ok: bool = False) -> Grant:
        """The grant of a well-signed, unexpired token of one of `kinds`.

        `expired_ok` accepts an expired one: for a caller that holds other proof
        the grant is still current (an open session it names). Does not consult
        the Store; `check` does.
        """
        if not token or len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
            raise LinkError("This link is not complete.", code="forged")
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkError("This link is not valid.", code="forged")
        try:
            body = json.loads(_unb64(payload))
            kind = Kind(body.pop("k"))
            grant = Grant(kind, str(body.pop("i")), int(body.pop("e")), body)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise LinkError("This link is not valid.", code="forged") from None
        if kinds and kind not in kinds:
            raise LinkError(
                f"This is a {kind} link; it does not open this page.", code="wrong_kind"
            )
        if grant.expires_at <= self._clock() and not expired_ok:
            raise LinkError("This link has expired. Ask for a new one.", code="expired")
        return grant

    async def check(self, token: str, *kinds: Kind, expired_ok: bool = False) -> Grant:
        """`verify`, then refuse revoked links."""
        grant = self.verify(token, *kinds, expired_ok=expired_ok)
        if await self.revoked(grant.id):
            raise LinkError(
                "This link was withdrawn. Ask for a new one.", code="revoked"
            )
        return grant

    async def revoked(self, link_id: str) -> bool:
        return await self._store.get(f"link:revoked:{link_id}") is not None

    def _ttl(self, grant: Grant) -> float:
        return max(1.0, grant.expires_at - self._clock() + 60)

    async def burn(self, grant: Grant) -> None:
        """Use a single-use link; a second use is refused."""
        owner = secrets.token_hex(8)
        held = await self._store.claim(f"link:used:{grant.id}", owner, self._ttl(grant))
        if held != owner:
            raise LinkError(
                "This link was already used. Ask for a new one.", code="used"
            )

    async def bind(self, grant: Grant, device: str) -> None:
        """Bind a link to the first device that opens it; refuse any other device."""
        held = await self._store.claim(
            f"link:device:{grant.id}", device, self._ttl(grant)
        )
        if not hmac.compare_digest(held, device):
            raise LinkError(
                "This link is already in use on another device. "
                "Ask for a new link if you need to join from here.",
                code="other_device",
            )

    async def revoke(self, link_id: str, ttl_s: float) -> None:
        await self._store.put(f"link:revoked:{link_id}", "1", ttl_s)
