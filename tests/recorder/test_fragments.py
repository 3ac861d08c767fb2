"""FragmentWriter: fragments reach the disk while the recording is still live."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from recorder.backlog import VideoItem
from recorder.fragments import FragmentWriter
from recorder.remux import readable_length
from tests.recorder.synth_media import (
    HEIGHT,
    VIDEO_TIME_BASE,
    WIDTH,
    audio_frames,
    h264_packets,
    tone,
    top_level_boxes,
)


def write_live(path: Path, *, audio: bool, speak: bool, seconds: float = 5.0) -> None:
    """Write ``seconds`` of media without closing, as a crash would leave it."""
    writer = FragmentWriter(
        path, name="t", width=WIDTH, height=HEIGHT, fragment_s=1.0, audio=audio
    )
    frames = audio_frames(tone(0.0, seconds), 0.0) if speak else []
    for packet in h264_packets(seconds):
        assert packet.pts is not None and packet.dts is not None
        writer.write_video(
            VideoItem(bytes(packet), packet.pts, packet.dts, packet.is_keyframe)
        )
        video_s = float(packet.pts * VIDEO_TIME_BASE)
        while (
            frames
            and frames[0].pts is not None
            and frames[0].pts / 48000 < video_s - 0.25
        ):
            writer.write_audio(frames.pop(0))
    # No close(): the file holds only what was flushed so far.


def last_times(path: Path) -> dict[str, float]:
    """Last packet time of each stream, reading the whole fragments only."""
    copy = path.with_suffix(".prefix.mp4")
    copy.write_bytes(path.read_bytes()[: readable_length(path)])
    last: dict[str, float] = {}
    with av.open(str(copy)) as container:
        for packet in container.demux():
            if packet.pts is not None and packet.time_base is not None:
                last[packet.stream.type] = float(packet.pts * packet.time_base)
    return last


@pytest.mark.parametrize(
    ("audio", "speak"),
    [(True, True), (True, False), (False, False)],
    ids=["speaking", "silent-mic", "video-only"],
)
def test_fragments_reach_the_disk_while_recording(
    tmp_path: Path, audio: bool, speak: bool
) -> None:
    path = tmp_path / "live.mp4"
    write_live(path, audio=audio, speak=speak)

    boxes = top_level_boxes(path)
    assert boxes[:3] == ["ftyp", "moov", "moof"]
    last = last_times(path)
    # Everything but the fragment in progress (and the audio's trail) is there.
    assert last["video"] >= 5.0 - 2.1
    if audio:
        assert last["audio"] >= 5.0 - 2.1
    else:
        assert "audio" not in last


def test_writer_keeps_session_times_and_ignores_video_before_a_keyframe(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.mp4"
    writer = FragmentWriter(
        path, name="t", width=WIDTH, height=HEIGHT, fragment_s=1.0, audio=False
    )
    for packet in h264_packets(3.0, start_s=7.0)[20:]:  # keyframe at 9.0 s
        assert packet.pts is not None and packet.dts is not None
        writer.write_video(
            VideoItem(bytes(packet), packet.pts, packet.dts, packet.is_keyframe)
        )
    writer.close()

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.start_time is not None
        assert float(stream.start_time * VIDEO_TIME_BASE) == pytest.approx(9.0)
        assert writer.video_packets == 30
