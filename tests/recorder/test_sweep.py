"""finalize_crashed: what a killed server left behind becomes a finished file."""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from recorder import (
    META_NAME,
    TIMELINE_NAME,
    VIDEO_NAME,
    finalize_crashed,
    read_meta,
    read_timeline,
)
from recorder.sweep import CRASH_REASON
from tests.recorder.synth_media import close_to, colour_at, mean_rgb, top_level_boxes

RunScript = Callable[..., subprocess.CompletedProcess[str]]


def decodable_times(path: Path) -> list[float]:
    """Frame times of ``path``, decoding until the first error."""
    times: list[float] = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                assert frame.time is not None
                times.append(frame.time)
                if len(times) % 15 == 0:
                    assert close_to(mean_rgb(frame), colour_at(frame.time), 25)
        except av.error.FFmpegError:
            pass  # the fragment being written when the process died
    return times


@pytest.mark.slow
def test_killed_recording_is_playable_and_the_sweep_finalizes_it(
    recordings: Path, run_script: RunScript
) -> None:
    directory = recordings / "crashed"
    result = run_script("crash_writer.py", str(directory), "4.0")
    assert result.returncode == -signal.SIGKILL, result.stderr

    # What the kill left: fragments, no index at the end, no meta.json.
    leftover = directory / VIDEO_NAME
    assert not (directory / META_NAME).exists()
    assert "moof" in top_level_boxes(leftover)
    times = decodable_times(leftover)
    assert times[-1] - times[0] >= 2.5

    assert finalize_crashed(recordings) == [directory]
    meta = read_meta(directory)
    assert meta is not None
    assert meta["finalized"] and meta["recovered"] and not meta["empty"]
    assert meta["reason"] == CRASH_REASON
    assert meta["has_audio"]
    assert (meta["width"], meta["height"]) == (320, 240)
    assert meta["duration_s"] >= 2.5

    boxes = top_level_boxes(leftover)
    assert "moof" not in boxes and boxes.index("moov") < boxes.index("mdat")
    with av.open(str(leftover)) as container:
        assert container.duration is not None
        assert container.duration / 1e6 == pytest.approx(meta["duration_s"], abs=0.1)
    finalized = decodable_times(leftover)
    assert finalized[0] == 0.0
    assert len(finalized) >= len(times)

    events = read_timeline(directory / TIMELINE_NAME)
    assert [e["kind"] for e in events][:2] == ["start", "tick"]
    end = events[-1]
    assert end == {
        "t": pytest.approx(meta["start_s"] + meta["duration_s"], abs=0.002),
        "kind": "end",
        "reason": CRASH_REASON,
        "recovered": True,
    }
    assert finalize_crashed(recordings) == []  # done once


def test_sweep_handles_broken_and_empty_directories(
    recordings: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = recordings / "garbage"
    garbage.mkdir()
    (garbage / VIDEO_NAME).write_bytes(b"\x00\x00\x00\x18ftypisom" + b"x" * 100)

    timeline_only = recordings / "timeline-only"
    timeline_only.mkdir()
    (timeline_only / TIMELINE_NAME).write_text('{"t": 3.25, "kind": "start"}\n')

    done = recordings / "done"
    done.mkdir()
    (done / VIDEO_NAME).write_bytes(b"")
    (done / META_NAME).write_text('{"finalized": true}')

    stuck = recordings / "stuck"
    stuck.mkdir()
    (stuck / VIDEO_NAME).write_bytes(b"")
    (stuck / "meta.json.tmp").mkdir()  # meta.json cannot be written here

    (recordings / "unrelated").mkdir()
    (recordings / "notes.txt").write_text("not a recording")

    with caplog.at_level(logging.ERROR, logger="recorder.sweep"):
        assert finalize_crashed(recordings) == [garbage, timeline_only]
    assert [r.getMessage() for r in caplog.records] == [
        "stuck: could not finalize the recording"
    ]

    for directory in (garbage, timeline_only):
        meta = read_meta(directory)
        assert meta is not None
        assert (meta["finalized"], meta["empty"], meta["recovered"]) == (
            True,
            True,
            True,
        )
        assert meta["duration_s"] == 0.0
    assert read_timeline(timeline_only / TIMELINE_NAME)[-1]["t"] == 3.25
    assert read_meta(done) == {"finalized": True}
    assert finalize_crashed(recordings / "missing") == []
