"""Records a live session in real time, then dies by SIGKILL mid-recording.

Usage: ``python crash_writer.py DIRECTORY KILL_AT_S``. Video packets are put when
their pts comes due on the session clock, audio goes through the mixer as it
would from a browser, and the timeline gets an event every second.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import av
from av.stream import Stream

from recorder import TIMELINE_NAME, AudioMixer, Recording, Timeline
from tests.recorder.synth_media import (
    FRAME_SAMPLES,
    HEIGHT,
    VIDEO_TIME_BASE,
    WIDTH,
    audio_frames,
    h264_packets,
    tone,
)


def main() -> None:
    directory = Path(sys.argv[1])
    kill_at_s = float(sys.argv[2])

    media: list[tuple[float, av.Packet[Stream] | av.AudioFrame]] = []
    for packet in h264_packets(kill_at_s + 1.0):
        assert packet.pts is not None
        media.append((float(packet.pts * VIDEO_TIME_BASE), packet))
    for frame in audio_frames(tone(0.0, kill_at_s + 1.0), 0.0):
        assert frame.pts is not None
        media.append(((frame.pts + FRAME_SAMPLES) / 48000, frame))
    media.sort(key=lambda entry: entry[0])

    recording = Recording(directory, width=WIDTH, height=HEIGHT)
    mixer = AudioMixer()
    started = time.monotonic()

    def clock() -> float:
        return time.monotonic() - started

    timeline = Timeline(directory / TIMELINE_NAME, clock)
    timeline.append("start")
    next_tick = 1.0

    for due_s, item in media:
        if due_s >= kill_at_s:
            break
        time.sleep(max(0.0, due_s - clock()))  # a live source, not a test wait
        if isinstance(item, av.AudioFrame):
            mixer.push("caller", item, due_s)
        else:
            recording.put_video(item)
        for frame in mixer.pull(clock()):
            recording.put_audio(frame)
        if due_s >= next_tick:
            timeline.append("tick")
            next_tick += 1.0

    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
