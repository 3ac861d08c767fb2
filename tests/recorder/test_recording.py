"""Recording: fragmented while live, a faststart MP4 with AAC once closed."""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path

import av
import numpy as np
import pytest

from recorder import META_NAME, VIDEO_NAME, Recording, read_meta
from tests.recorder.synth_media import (
    AUDIO_RATE,
    HEIGHT,
    WIDTH,
    audio_frames,
    band_energy,
    close_to,
    colour_at,
    decoded_audio,
    decoded_video,
    feed,
    h264_packets,
    mean_rgb,
    onsets,
    peak_hz,
    tone,
    top_level_boxes,
)

# Enough room to feed a whole test recording at once, faster than real time.
QUEUE_ITEMS = 4096


def record(
    directory: Path,
    *,
    video_s: float = 5.0,
    start_s: float = 0.0,
    audio_from_s: float | None = None,
    burst_s: float | None = None,
    skip_packets: int = 0,
) -> Recording:
    """A recording fed with ``video_s`` of media from session time ``start_s``."""
    recording = Recording(
        directory, width=WIDTH, height=HEIGHT, max_queue_items=QUEUE_ITEMS
    )
    packets = h264_packets(video_s, start_s=start_s)[skip_packets:]
    audio_start = start_s if audio_from_s is None else audio_from_s
    samples = tone(audio_start, start_s + video_s - audio_start, burst_s=burst_s)
    feed(recording, packets, audio_frames(samples, audio_start))
    return recording


def test_closed_recording_is_a_faststart_mp4_with_h264_and_aac(tmp_path: Path) -> None:
    directory = tmp_path / "r1"
    before = time.time()
    meta = record(directory).close("hangup")

    assert meta is not None and meta == read_meta(directory)
    assert before - 0.001 <= meta.pop("started_at") <= time.time()
    assert meta == {
        "finalized": True,
        "empty": False,
        "duration_s": 5.0,
        "start_s": 0.0,
        "width": WIDTH,
        "height": HEIGHT,
        "has_audio": True,
        "reason": "hangup",
        "recovered": False,
        "error": None,
    }
    path = directory / VIDEO_NAME
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat")
    assert "moof" not in boxes
    assert sorted(p.name for p in directory.iterdir()) == [META_NAME, VIDEO_NAME]

    with av.open(str(path)) as container:
        assert container.duration is not None
        assert container.duration / 1e6 == pytest.approx(5.0, abs=0.1)
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == (
            "h264",
            WIDTH,
            HEIGHT,
        )
        assert audio.codec_context.name == "aac"
        assert (audio.sample_rate, audio.channels) == (AUDIO_RATE, 1)


def test_one_line_when_it_starts_and_one_when_it_closes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="recorder"):
        record(tmp_path / "abc123", video_s=2.0).close("customer left")

    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [
        "abc123: recording started (320x240, with audio)",
        "abc123: recording closed: customer left (2.0 s)",
    ]


def test_frames_show_what_the_camera_showed_at_that_time(tmp_path: Path) -> None:
    directory = tmp_path / "r2"
    record(directory).close("hangup")

    frames = decoded_video(directory / VIDEO_NAME)
    assert len(frames) == 150
    for frame in frames[::10]:
        assert frame.time is not None
        assert close_to(mean_rgb(frame), colour_at(frame.time), tolerance=25)


def test_audio_is_the_tone_and_lasts_as_long_as_the_video(tmp_path: Path) -> None:
    directory = tmp_path / "r3"
    record(directory).close("hangup")

    first_s, samples = decoded_audio(directory / VIDEO_NAME)
    assert first_s == pytest.approx(0.0, abs=0.001)
    assert len(samples) / AUDIO_RATE == pytest.approx(5.0, abs=0.05)
    assert peak_hz(samples[AUDIO_RATE : 2 * AUDIO_RATE]) == pytest.approx(440, abs=2)


def test_audio_stays_in_step_with_video_on_the_session_clock(tmp_path: Path) -> None:
    # Tone bursts start on each second, when the camera changes colour; the
    # session clock is at 2 s when the recording's first frame arrives.
    directory = tmp_path / "r4"
    meta = record(directory, start_s=2.0, burst_s=0.2).close("hangup")
    assert meta is not None
    assert meta["start_s"] == 2.0

    frames = decoded_video(directory / VIDEO_NAME)
    changes = [
        frame.time
        for previous, frame in itertools.pairwise(frames)
        if not close_to(mean_rgb(previous), mean_rgb(frame), tolerance=25)
    ]
    assert changes == pytest.approx([1.0, 2.0, 3.0, 4.0], abs=0.001)

    first_s, samples = decoded_audio(directory / VIDEO_NAME)
    heard = [first_s + t for t in onsets(samples)]
    assert heard == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0], abs=0.01)


def test_audio_that_starts_late_is_preceded_by_silence(tmp_path: Path) -> None:
    directory = tmp_path / "r5"
    record(directory, audio_from_s=2.0).close("hangup")

    first_s, samples = decoded_audio(directory / VIDEO_NAME)
    assert first_s == pytest.approx(0.0, abs=0.001)
    before = samples[: round(1.9 * AUDIO_RATE)]
    after = samples[round(2.1 * AUDIO_RATE) : round(4.9 * AUDIO_RATE)]
    assert np.abs(before).max() < 0.001
    assert band_energy(after, 440) > 0.9


def test_the_file_starts_on_the_first_keyframe(tmp_path: Path) -> None:
    # Joining mid-GOP: the first 45 packets come before the keyframe at 2 s.
    directory = tmp_path / "r6"
    meta = record(directory, skip_packets=45).close("hangup")
    assert meta is not None
    assert (meta["start_s"], meta["duration_s"]) == (2.0, 3.0)

    frames = decoded_video(directory / VIDEO_NAME)
    assert frames[0].key_frame
    assert frames[0].time == 0.0
    assert close_to(mean_rgb(frames[0]), colour_at(2.0), tolerance=25)


def test_video_only_recording_has_no_audio_stream(tmp_path: Path) -> None:
    directory = tmp_path / "r7"
    recording = Recording(directory, width=WIDTH, height=HEIGHT, audio=False)
    feed(recording, h264_packets(2.0), audio_frames(tone(0.0, 2.0), 0.0))
    meta = recording.close("hangup")

    assert meta is not None
    assert (meta["has_audio"], meta["duration_s"]) == (False, 2.0)
    with av.open(str(directory / VIDEO_NAME)) as container:
        assert len(container.streams.audio) == 0


def test_recording_that_never_saw_a_keyframe_is_empty(tmp_path: Path) -> None:
    directory = tmp_path / "r8"
    recording = Recording(directory, width=WIDTH, height=HEIGHT)
    non_key = [p for p in h264_packets(1.0) if not p.is_keyframe]
    feed(recording, non_key, audio_frames(tone(0.0, 1.0), 0.0))
    meta = recording.close("no camera")

    assert meta is not None
    assert (meta["empty"], meta["duration_s"], meta["reason"]) == (
        True,
        0.0,
        "no camera",
    )
    assert not (directory / VIDEO_NAME).exists()


async def test_aclose_finalizes_off_the_event_loop(tmp_path: Path) -> None:
    directory = tmp_path / "r9"
    recording = record(directory, video_s=2.0)
    meta = await recording.aclose("left")

    assert meta is not None and meta["reason"] == "left"
    assert recording.closed
    assert await recording.aclose("again") is meta
    recording.put_video(h264_packets(0.1)[0])  # harmless after close
    assert json.loads((directory / META_NAME).read_text())["reason"] == "left"


def test_recording_refuses_a_directory_already_used(tmp_path: Path) -> None:
    directory = tmp_path / "r10"
    Recording(directory, width=WIDTH, height=HEIGHT).close("empty")
    with pytest.raises(FileExistsError):
        Recording(directory, width=WIDTH, height=HEIGHT)


def test_put_audio_rejects_frames_the_mixer_would_not_make(tmp_path: Path) -> None:
    recording = Recording(tmp_path / "r11", width=WIDTH, height=HEIGHT)
    try:
        stereo = audio_frames(tone(0.0, 0.1), 0.0, layout="stereo")[0]
        with pytest.raises(ValueError, match="s16 mono"):
            recording.put_audio(stereo)
    finally:
        recording.close("test")
