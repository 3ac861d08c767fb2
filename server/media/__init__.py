"""Media: aiortc peers, inbound sources, encode-once feeds and outbound tracks.

This package never imports the domain (rooms, support, routing) nor aiohttp.
"""

from server.media.feed import Feed, PacketTrack
from server.media.ice import announce_host_addresses, rtc_configuration
from server.media.peer import Peer, PeerState
from server.media.source import Source
from server.media.tracks import FrameTrack

__all__ = [
    "Feed",
    "FrameTrack",
    "PacketTrack",
    "Peer",
    "PeerState",
    "Source",
    "announce_host_addresses",
    "rtc_configuration",
]
