"""TURN credentials by the TURN REST API scheme, and the ICE servers peers get.

A TURN server (coturn: ``use-auth-secret``, ``static-auth-secret=<secret>``) and
Tapline share one secret. For each page and each server peer Tapline mints a
short-lived credential: the username is ``<expiry unix time>:<user>`` and the
password is ``base64(HMAC-SHA1(secret, username))``. The TURN server recomputes
it and refuses it after the expiry, so a leaked credential is worth little and
the secret itself never leaves the server.

`ice_servers` gives the list in the browser's ``RTCIceServer`` shape; the server's
own aiortc peers take the same list (`server.media.ice.rtc_configuration`).
aiortc uses only the first TURN URL it supports, so list UDP first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

from server.config import Config

__all__ = ["TurnCredential", "ice_problems", "ice_servers", "turn_credential"]

_USER_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_ICE_URL = re.compile(
    r"(?:stuns?:[^\s?/@]+|turns?:[^\s?/@]+(?:\?transport=(?:udp|tcp))?)"
)


@dataclass(frozen=True)
class TurnCredential:
    username: str
    credential: str
    expires_at: int


def turn_credential(
    secret: str, user: str, ttl_s: float, now: float | None = None
) -> TurnCredential:
    """A credential for `user` valid `ttl_s` seconds from `now`."""
    expires_at = int((time.time() if now is None else now) + ttl_s)
    name = _USER_CHARS.sub("_", user)[:64] or "anonymous"
    username = f"{expires_at}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode(), expires_at)


def ice_problems(config: Config) -> list[str]:
    """What is wrong with the STUN/TURN settings, in words (empty: nothing).

    A malformed URL makes every browser's RTCPeerConnection and every server peer
    throw, and TURN URLs without the secret are silently left out: both would
    only show up as sessions that never connect."""
    problems = []
    for option, urls in (
        ("--ice-server", config.ice_servers),
        ("--turn-url", config.turn_urls),
    ):
        for url in urls:
            if not _ICE_URL.fullmatch(url):
                problems.append(
                    f"{option} {url!r} is not a STUN/TURN URL: stun:HOST[:PORT], "
                    "turn:HOST[:PORT][?transport=udp|tcp] or turns:..."
                )
    if config.turn_urls and not config.turn_secret:
        problems.append(
            "--turn-url needs TAPLINE_TURN_SECRET (the TURN server's "
            "static-auth-secret) to mint credentials."
        )
    return problems


def ice_servers(config: Config, user: str) -> list[dict[str, Any]]:
    """The configured STUN/TURN servers, TURN ones with a fresh credential."""
    out: list[dict[str, Any]] = [{"urls": url} for url in config.ice_servers]
    if config.turn_urls and config.turn_secret:
        cred = turn_credential(config.turn_secret, user, config.turn_ttl_s)
        out.append(
            {
                "urls": list(config.turn_urls),
                "username": cred.username,
                "credential": cred.credential,
            }
        )
    return out
