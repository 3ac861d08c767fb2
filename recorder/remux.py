"""Turns a fragmented recording into a regular MP4 with its index at the front.

Packets are copied, never re-encoded, and moved so that the video starts at zero;
the session-clock time of that zero is returned as ``start_s``. The same code
finalizes a recording that closed normally and one a crash left behind:

* only whole top-level boxes are read, and a ``moof`` without its ``mdat`` is left
  out: FFmpeg refuses to open a file whose last ``moof`` is cut short;
* reading stops at the first error or damaged packet, keeping what came before.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import av
from av.container import InputContainer
from av.stream import Stream
from av.video.stream import VideoStream

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["RemuxResult", "readable_length", "remux_faststart"]

logger = logging.getLogger(__name__)

_BOX_HEADER = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class RemuxResult:
    """What the remux copied. Times are seconds on the session clock."""

    packets: int
    start_s: float
    end_s: float
    width: int
    height: int
    has_video: bool
    has_audio: bool
    complete: bool  # False when reading stopped on an error

    @classmethod
    def empty(cls) -> RemuxResult:
        return cls(0, 0.0, 0.0, 0, 0, False, False, False)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


def remux_faststart(source: Path, target: Path) -> RemuxResult:
    """Copy every readable packet of ``source`` into a faststart MP4 ``target``.

    ``target`` is not created when nothing is readable (``packets == 0``).
    Errors reading ``source`` end the copy; errors writing ``target`` raise.
    """
    length = readable_length(source)
    with source.open("rb") as raw:
        try:
            container = av.open(_Prefix(raw, length), "r")
        except (av.error.FFmpegError, OSError) as exc:
            logger.debug("%s: nothing readable: %s", source, exc)
            return RemuxResult.empty()
        with container:
            return _copy(container, target)


def _copy(source: InputContainer, target: Path) -> RemuxResult:
    inputs = [s for s in source.streams if s.type in ("video", "audio")]
    video = source.streams.video[0] if source.streams.video else None
    origin = _origin(video, inputs)

    output = av.open(str(target), "w", format="mp4", options={"movflags": "faststart"})
    with output:
        outputs = {s.index: output.add_stream_from_template(s) for s in inputs}
        packets, end, complete = 0, origin, True
        kinds: set[str] = set()

        for packet in _PacketIter(source, set(outputs)):
            if packet is None:
                complete = False
                break
            assert packet.pts is not None and packet.dts is not None
            time_base = packet.time_base
            assert time_base is not None
            shift = round(origin / time_base)
            end = max(end, (packet.pts + (packet.duration or 0)) * time_base)

            packet.pts -= shift
            packet.dts -= shift
            packet.stream = outputs[packet.stream_index]
            output.mux(packet)
            packets += 1
            kinds.add(packet.stream.type)

    width = video.width if video is not None else 0
    height = video.height if video is not None else 0
    return RemuxResult(
        packets=packets,
        start_s=float(origin) if packets else 0.0,
        end_s=float(end) if packets else 0.0,
        width=width,
        height=height,
        has_video="video" in kinds,
        has_audio="audio" in kinds,
        complete=complete,
    )


def _origin(video: VideoStream | None, streams: list[Stream]) -> Fraction:
    """Session time of the first video frame (or of the earliest stream)."""
    candidates: list[Stream] = [video] if video is not None else streams
    starts = [
        s.start_time * s.time_base
        for s in candidates
        if s.start_time is not None and s.time_base is not None
    ]
    return min(starts, default=Fraction(0))


class _PacketIter:
    """Demuxed packets of the wanted streams; yields None once reading fails."""

    def __init__(self, source: InputContainer, indexes: set[int]) -> None:
        self._demux = source.demux()
        self._indexes = indexes
        self._failed = False

    def __iter__(self) -> _PacketIter:
        return self

    def __next__(self) -> av.Packet[Stream] | None:
        if self._failed:
            raise StopIteration
        while True:
            try:
                packet = next(self._demux)
            except (av.error.FFmpegError, OSError) as exc:
                logger.debug("reading stopped: %s", exc)
                self._failed = True
                return None
            if packet.stream_index not in self._indexes or packet.dts is None:
                continue  # another kind of stream, or the demuxer's flush packet
            if packet.is_corrupt or packet.pts is None:
                self._failed = True
                return None
            return packet


def readable_length(path: Path) -> int:
    """Bytes of ``path`` made of whole top-level boxes, dropping a lone ``moof``."""
    size = path.stat().st_size
    good = position = 0
    with path.open("rb") as file:
        while position + _BOX_HEADER.size <= size:
            file.seek(position)
            box_size, kind = _BOX_HEADER.unpack(file.read(_BOX_HEADER.size))
            header = _BOX_HEADER.size
            if box_size == 1:
                if position + header + _LARGE_SIZE.size > size:
                    break
                (box_size,) = _LARGE_SIZE.unpack(file.read(_LARGE_SIZE.size))
                header += _LARGE_SIZE.size
            elif box_size == 0:
                box_size = size - position  # runs to the end of the file
            if box_size < header or position + box_size > size:
                break

            position += box_size
            if kind != b"moof":  # a moof only counts with the mdat after it
                good = position
    return good


class _Prefix(io.RawIOBase):
    """The first ``length`` bytes of a file, for FFmpeg to read and seek in."""

    def __init__(self, file: BinaryIO, length: int) -> None:
        super().__init__()
        self._file = file
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self._length - self._position))
        if count == 0:
            return 0
        self._file.seek(self._position)
        data = self._file.read(count)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._length + offset
        else:
            raise ValueError(f"bad whence {whence}")
        self._position = max(0, position)
        return self._position

    def tell(self) -> int:
        return self._position
