"""Thumbnails, the preview strip and clip export, on synthetic recordings."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import pytest

from recorder import VIDEO_NAME, Recording
from recorder.clip import export_clip
from recorder.previews import STRIP_NAME, THUMB_NAME, make_previews, read_previews
from tests.recorder.synth_media import (
    audio_frames,
    close_to,
    colour_at,
    feed,
    h264_packets,
    mean_rgb,
    tone,
)

GOP_S = 2.0  # h264_packets' default: a keyframe every 60 frames at 30 fps


def recorded(directory: Path, seconds: float = 8.0) -> Path:
    recording = Recording(directory, width=320, height=240, max_queue_items=10_000)
    samples = tone(0.0, seconds)
    feed(recording, h264_packets(seconds), audio_frames(samples, 0.0))
    recording.close("done")
    return directory


def test_previews_show_the_frames_at_their_times(tmp_path: Path) -> None:
    directory = recorded(tmp_path / "r")
    previews = make_previews(directory, count=4)

    assert previews.thumb
    assert read_previews(directory) == previews
    thumb = cv2.imread(str(directory / THUMB_NAME))
    assert thumb is not None and thumb.shape[1] == 320
    # The thumbnail is the frame at 30 % of 8 s: colour of second 2.
    b, g, r = thumb.reshape(-1, 3).mean(axis=0)
    assert close_to((float(r), float(g), float(b)), colour_at(2.4), 30)
    strip = cv2.imread(str(directory / STRIP_NAME))
    assert strip is not None and strip.shape[1] == 160 * 4
    # Tiles at 1, 3, 5 and 7 s (the frame showing then), not at keyframes (0, 2 ...).
    assert previews.strip_times == pytest.approx([1.0, 3.0, 5.0, 7.0], abs=1 / 30)


@pytest.mark.parametrize(("start", "end"), [(0.0, 2.5), (3.1, 6.0), (5.9, 8.0)])
def test_clip_starts_within_one_gop_and_decodes(
    tmp_path: Path, start: float, end: float
) -> None:
    directory = recorded(tmp_path / "r")
    target = tmp_path / "clip.mp4"
    clip = export_clip(directory / VIDEO_NAME, target, start, end)

    assert start - GOP_S < clip.start_s <= start
    assert end <= clip.end_s + 0.05
    with av.open(str(target)) as container:
        assert container.streams.audio, "the clip lost its audio"
        frames = list(container.decode(video=0))
    assert frames[0].key_frame
    assert float(frames[0].time or 0) == pytest.approx(0.0, abs=0.001)
    assert len(frames) == round((clip.end_s - clip.start_s) * 30)
    # The first frame shows what the recording showed at the clip's start.
    assert close_to(mean_rgb(frames[0]), colour_at(clip.start_s), 30)


def test_clip_range_is_validated(tmp_path: Path) -> None:
    directory = recorded(tmp_path / "r", seconds=2.0)
    with pytest.raises(ValueError):
        export_clip(directory / VIDEO_NAME, tmp_path / "c.mp4", 3.0, 1.0)
    with pytest.raises(ValueError, match="ends before"):
        export_clip(directory / VIDEO_NAME, tmp_path / "c.mp4", 2.5, 4.0)
