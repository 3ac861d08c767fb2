"""ICE settings for the server's peers: configured servers and announced addresses.

aiortc falls back to a public STUN server when a configuration names none, so every
peer is built from `rtc_configuration`. aioice offers every interface address except
loopback; `announce_host_addresses` replaces that list with the configured ones (the
"announced address" of other media servers). That hook is aioice's module-level
`get_host_addresses`, private behaviour: aioice is pinned exactly in pyproject.toml
and tests/media/test_ice.py fails if the hook stops taking effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aioice
import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

__all__ = [
    "PINNED_AIOICE",
    "IceServer",
    "announce_host_addresses",
    "own_addresses",
    "rtc_configuration",
]

logger = logging.getLogger(__name__)

PINNED_AIOICE = "0.13.0"

_original: Callable[..., list[str]] = aioice.ice.get_host_addresses


IceServer = str | Mapping[str, Any]
"""A URL, or a browser-shaped entry {"urls", "username"?, "credential"?}."""


def rtc_configuration(
    servers: Sequence[IceServer], *, relay_only: bool = False
) -> RTCConfiguration:
    """Exactly the configured ICE servers: an empty list means host candidates only."""
    entries = []
    for server in servers:
        if isinstance(server, str):
            entries.append(RTCIceServer(urls=server))
        else:
            entries.append(
                RTCIceServer(
                    urls=server["urls"],
                    username=server.get("username"),
                    credential=server.get("credential"),
                )
            )
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=entries, iceTransportPolicy=policy)


def own_addresses() -> list[str]:
    """What aioice offers when nothing is announced: every address but loopback."""
    return list(_original(True, True))


def announce_host_addresses(addresses: Sequence[str]) -> None:
    """Offer these addresses as host candidates; an empty list restores aioice's own."""
    if aioice.__version__ != PINNED_AIOICE:
        raise RuntimeError(
            f"aioice {aioice.__version__} is installed but the announced-address hook "
            f"was written for {PINNED_AIOICE}; re-check aioice.ice.get_host_addresses"
        )
    chosen = [a for a in addresses if a]
    if not chosen:
        aioice.ice.get_host_addresses = _original
        return

    def announced(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (use_ipv6 if ":" in a else use_ipv4)]

    aioice.ice.get_host_addresses = announced
    logger.info("ICE host candidates announced on %s", ", ".join(chosen))
