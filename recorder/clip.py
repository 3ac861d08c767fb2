"""Cuts a time range out of a finalized recording without re-encoding it.

The cut starts at the keyframe at or before the asked start (a decoder needs it),
so a clip begins at most one keyframe interval early; it ends at the first video
packet at or past the asked end. Packets are copied as they are and moved so the
clip starts at zero; audio before the first kept video frame is left out.

Blocking: call from a worker thread, never from the event loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

__all__ = ["Clip", "export_clip"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Clip:
    """Where the clip's video really starts and ends, seconds on the recording."""

    start_s: float
    end_s: float
    packets: int

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


def export_clip(source: Path, target: Path, start_s: float, end_s: float) -> Clip:
    """Copy ``[start_s, end_s)`` of ``source`` into the faststart MP4 ``target``."""
    if not 0 <= start_s < end_s:
        raise ValueError(f"bad clip range {start_s}..{end_s}")

    with av.open(str(source)) as container:
        if not container.streams.video:
            raise ValueError(f"{source}: no video to cut")
        video = container.streams.video[0]
        assert video.time_base is not None
        if video.duration is not None and start_s >= video.duration * video.time_base:
            raise ValueError(f"{source}: the video ends before {start_s} s")
        inputs = [s for s in container.streams if s.type in ("video", "audio")]
        container.seek(round(start_s / video.time_base), stream=video)

        output = av.open(
            str(target), "w", format="mp4", options={"movflags": "faststart"}
        )
        with output:
            outputs = {s.index: output.add_stream_from_template(s) for s in inputs}
            origin: Fraction | None = None
            end = Fraction(0)
            packets = 0
            for packet in container.demux(inputs):
                if packet.dts is None or packet.pts is None:
                    continue  # the demuxer's flush packet
                time_base = packet.time_base
                assert time_base is not None
                at = packet.pts * time_base
                is_video = packet.stream_index == video.index

                if origin is None:
                    if not (is_video and packet.is_keyframe):
                        continue
                    origin = at
                if is_video and at >= end_s:
                    break
                if at < origin or at >= end_s:
                    continue

                shift = round(origin / time_base)
                if is_video:
                    end = max(end, (packet.pts + (packet.duration or 0)) * time_base)
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = outputs[packet.stream_index]
                output.mux(packet)
                packets += 1

    if origin is None:
        raise ValueError(f"{source}: no keyframe before {end_s} s")
    clip = Clip(float(origin), float(end), packets)
    logger.debug("%s: clip %.3f-%.3f s", source.parent.name, clip.start_s, clip.end_s)
    return clip
