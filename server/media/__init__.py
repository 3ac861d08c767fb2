"""Media: aiortc peers, inbound sources, encode-once feeds and outbound tracks.

This package never imports the domain (rooms, support, routing) nor aiohttp.
"""

from server.media.feed import Feed, PacketTrack
from server.media.ice import announce_host_addresses, rtc_configuration
from server.media.multiview import Multiview, Tile
from server.media.peer import Peer, PeerState
from server.media.program import Layout, Program, Shot, Zoom
from server.media.source import Source
from server.media.synthetic import Look, SyntheticCamera
from server.media.tracks import FrameTrack
from server.media.voice import VoiceFeed, VoicePacketTrack

__all__ = [
    "Feed",
    "FrameTrack",
    "Layout",
    "Look",
    "Multiview",
    "PacketTrack",
    "Peer",
    "PeerState",
    "Program",
    "Shot",
    "Source",
    "SyntheticCamera",
    "Tile",
    "VoiceFeed",
    "VoicePacketTrack",
    "Zoom",
    "announce_host_addresses",
    "rtc_configuration",
]
