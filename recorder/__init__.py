"""Tapline's recorder: crash-safe session recordings.

* :class:`Recording` writes a session's video packets and mixed audio as
  fragmented MP4 on its own thread, and finalizes it on close.
* :class:`AudioMixer` mixes the participants' audio onto the session clock.
* :class:`Timeline` appends the session's events beside the video.
* :func:`finalize_crashed` finalizes what a crash left behind, at start.

Nothing here imports aiohttp or aiortc: the server feeds it PyAV objects.
"""

from .layout import META_NAME, TIMELINE_NAME, VIDEO_NAME, read_meta
from .mixer import AudioMixer
from .recording import Recording
from .sweep import finalize_crashed
from .timeline import Timeline, read_timeline

__all__ = [
    "META_NAME",
    "TIMELINE_NAME",
    "VIDEO_NAME",
    "AudioMixer",
    "Recording",
    "Timeline",
    "finalize_crashed",
    "read_meta",
    "read_timeline",
]
