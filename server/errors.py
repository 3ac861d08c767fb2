"""Tapline's errors: each carries its context and maps to one code on the wire.

TaplineError                 code, reason, http_status
├── ProtocolError            a websocket message we cannot accept
│   ├── bad_json, bad_message, unknown_type, too_large, rate_limited
│   ├── wrong_state          valid message, wrong moment
│   ├── ice_restart_unsupported  offer again from a new peer connection
│   └── moved                the session is served by another node
├── SdpError                 bad_sdp: the description was refused, with the reason
├── LinkError                a link or token that does not let you in
│   └── forged, expired, revoked, used, wrong_kind, other_device
├── AuthError                not_signed_in, forbidden
├── NotFound                 not_found
├── CapacityError            busy: a configured limit is reached
├── StoreUnavailable         unavailable: the shared store (Redis) cannot be reached
└── FileRefused              an upload we do not keep
    └── unsupported_type (415), too_large (413), too_many_files
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "CapacityError",
    "FileRefused",
    "LinkError",
    "NotFound",
    "ProtocolError",
    "SdpError",
    "StoreUnavailable",
    "TaplineError",
]


class TaplineError(Exception):
    """Base class: `code` is the wire code, `reason` the words a person reads."""

    code = "error"
    http_status = 400

    def __init__(self, reason: str, *, code: str | None = None, **context: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code
        self.context = context

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "error",
            "code": self.code,
            "reason": self.reason,
        }
        ref = self.context.get("ref")
        if ref is not None:
            out["ref"] = ref
        return out


class ProtocolError(TaplineError):
    code = "bad_message"


class SdpError(TaplineError):
    code = "bad_sdp"


class LinkError(TaplineError):
    code = "bad_link"
    http_status = 403


class AuthError(TaplineError):
    code = "forbidden"
    http_status = 403


class NotFound(TaplineError):
    code = "not_found"
    http_status = 404


class CapacityError(TaplineError):
    code = "busy"
    http_status = 503


class StoreUnavailable(TaplineError):
    code = "unavailable"
    http_status = 503


class FileRefused(TaplineError):
    code = "unsupported_type"
    http_status = 415

    def __init__(self, reason: str, *, code: str | None = None, **context: Any) -> None:
        super().__init__(reason, code=code, **context)
        self.http_status = {"too_large": 413, "too_many_files": 409}.get(self.code, 415)
