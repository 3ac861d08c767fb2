"""ICE: configured servers only, and the announced host address is what is offered.

`announce_host_addresses` replaces aioice's private module-level function; this file
fails if an aioice upgrade stops that from taking effect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import aioice
import pytest
from aiortc import RTCPeerConnection

from server.app import create_app
from server.media import announce_host_addresses, rtc_configuration
from server.media.ice import PINNED_AIOICE, own_addresses
from tests.conftest import node_config


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    announce_host_addresses(["127.0.0.1"])
    yield
    announce_host_addresses(["127.0.0.1"])


def test_aioice_is_the_pinned_version() -> None:
    assert aioice.__version__ == PINNED_AIOICE


def test_empty_ice_servers_mean_no_stun_default() -> None:
    assert rtc_configuration([]).iceServers == []


async def _candidates() -> list[str]:
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_announced_address_is_the_only_host_candidate() -> None:
    candidates = await _candidates()
    assert candidates
    assert all(" 127.0.0.1 " in line for line in candidates), candidates
    assert not any(" srflx " in line or " relay " in line for line in candidates)


async def test_announced_address_filters_by_family() -> None:
    announce_host_addresses(["::1", "127.0.0.1"])
    candidates = await _candidates()
    hosts = {line.split()[4] for line in candidates}
    assert hosts <= {"127.0.0.1", "::1"}
    assert "127.0.0.1" in hosts


def test_a_different_aioice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice, "__version__", "99.0.0")
    with pytest.raises(RuntimeError, match="announced-address hook"):
        announce_host_addresses(["127.0.0.1"])


async def test_a_machine_with_only_loopback_is_told_to_announce_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if own_addresses():
        pytest.skip("this machine has an address besides loopback")
    # With nothing to offer, no peer could ever connect: say so at start-up.
    with caplog.at_level(logging.WARNING, logger="server.app"):
        create_app(node_config(tmp_path / "data", ice_host=""))
    assert "--ice-host 127.0.0.1" in caplog.text
