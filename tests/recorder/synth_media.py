"""Synthetic media for the recorder tests: H.264 packets, tones, and checks.

Video changes colour every second of the session clock, so a decoded frame tells
where in the session it came from; audio is a tone, optionally in short bursts
that start on each second, so the audio can be lined up with the video.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import numpy.typing as npt
from av.stream import Stream

from recorder import Recording

VIDEO_TIME_BASE = Fraction(1, 90000)
AUDIO_RATE = 48000
FRAME_SAMPLES = 960
WIDTH, HEIGHT = 320, 240
FPS = 30

COLOURS = [
    (220, 40, 40),
    (40, 200, 60),
    (40, 60, 220),
    (230, 220, 40),
    (40, 210, 220),
    (220, 50, 210),
    (240, 240, 240),
    (30, 30, 30),
]

if TYPE_CHECKING:
    Packet = av.Packet[Stream]


def colour_at(session_s: float) -> tuple[int, int, int]:
    """The colour the synthetic camera shows at ``session_s``."""
    return COLOURS[math.floor(session_s + 1e-6) % len(COLOURS)]


def h264_packets(
    seconds: float,
    *,
    start_s: float = 0.0,
    fps: int = FPS,
    gop: int = 60,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> list[Packet]:
    """Baseline H.264 as a live encoder makes it: SPS/PPS in band on keyframes."""
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = VIDEO_TIME_BASE
    encoder.framerate = Fraction(fps)
    encoder.profile = "Baseline"
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop)}

    packets: list[Packet] = []
    image = np.empty((height, width, 3), dtype=np.uint8)
    for index in range(round(seconds * fps)):
        session_s = start_s + index / fps
        image[:] = colour_at(session_s)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = round(session_s / VIDEO_TIME_BASE)
        frame.time_base = VIDEO_TIME_BASE
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    return packets


def tone(
    start_s: float,
    seconds: float,
    *,
    freq: float = 440.0,
    amplitude: int = 8000,
    burst_s: float | None = None,
    rate: int = AUDIO_RATE,
) -> npt.NDArray[np.int16]:
    """Samples of a sine on the session clock; only ``burst_s`` of each second."""
    positions = np.arange(round(start_s * rate), round((start_s + seconds) * rate))
    times = positions / rate
    samples = amplitude * np.sin(2 * np.pi * freq * times)
    if burst_s is not None:
        samples[(times % 1.0) >= burst_s] = 0
    return samples.astype(np.int16)


def audio_frames(
    samples: npt.NDArray[np.int16],
    start_s: float,
    *,
    frame_samples: int = FRAME_SAMPLES,
    rate: int = AUDIO_RATE,
    layout: str = "mono",
) -> list[av.AudioFrame]:
    """``samples`` cut into s16 frames with pts in 1/rate from ``start_s``."""
    channels = av.AudioLayout(layout).nb_channels
    first = round(start_s * rate)
    frames = []
    for offset in range(0, len(samples) - frame_samples + 1, frame_samples):
        chunk = samples[offset : offset + frame_samples]
        packed = np.repeat(chunk, channels).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
        frame.sample_rate = rate
        frame.pts = first + offset
        frame.time_base = Fraction(1, rate)
        frames.append(frame)
    return frames


def feed(
    recording: Recording,
    packets: Iterable[Packet],
    frames: Iterable[av.AudioFrame],
    *,
    audio_lag_s: float = 0.25,
) -> None:
    """Put media in the order a live session would: audio ``audio_lag_s`` late."""
    timed: list[tuple[float, int, Packet | av.AudioFrame]] = []
    for packet in packets:
        assert packet.pts is not None
        timed.append((float(packet.pts * VIDEO_TIME_BASE), 0, packet))
    for frame in frames:
        assert frame.pts is not None
        end_s = (frame.pts + frame.samples) / AUDIO_RATE
        timed.append((end_s + audio_lag_s, 1, frame))

    for _, _, item in sorted(timed, key=lambda entry: entry[:2]):
        if isinstance(item, av.AudioFrame):
            recording.put_audio(item)
        else:
            recording.put_video(item)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4 box types at the top of ``path``, in file order."""
    data = path.read_bytes()
    kinds, position = [], 0
    while position + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[position + 8 : position + 16])
        kinds.append(kind.decode("latin-1"))
        if size < 8:
            break
        position += size
    return kinds


def decoded_video(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def decoded_audio(path: Path) -> tuple[float, npt.NDArray[np.float32]]:
    """Start time (s) and the mono float samples of the file's audio."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    first = frames[0].time
    assert first is not None
    samples = np.concatenate([frame.to_ndarray()[0] for frame in frames])
    return first, samples.astype(np.float32)


def mean_rgb(frame: av.VideoFrame) -> tuple[float, float, float]:
    rgb = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def close_to(
    actual: tuple[float, float, float],
    expected: tuple[float, float, float],
    tolerance: float,
) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def peak_hz(samples: npt.NDArray[np.floating], rate: int = AUDIO_RATE) -> float:
    """The strongest frequency in ``samples``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def band_energy(
    samples: npt.NDArray[np.floating], freq: float, rate: int = AUDIO_RATE
) -> float:
    """Share of the spectrum's energy within 20 Hz of ``freq``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    total = float(spectrum.sum())
    return float(spectrum[np.abs(freqs - freq) <= 20].sum()) / total if total else 0.0


def onsets(
    samples: npt.NDArray[np.floating], rate: int = AUDIO_RATE, window_s: float = 0.002
) -> Iterator[float]:
    """Times (s from the first sample) where sound starts after silence."""
    window = round(window_s * rate)
    count = len(samples) // window
    loud = np.abs(samples[: count * window]).reshape(count, window).max(axis=1)
    threshold = 0.2 * float(loud.max())
    previous = False
    for index, level in enumerate(loud):
        now = bool(level > threshold)
        if now and not previous:
            yield index * window / rate
        previous = now
