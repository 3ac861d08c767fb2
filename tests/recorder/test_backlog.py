"""Backlog: the bounded hand-over to the writer thread and its drop policy."""

from __future__ import annotations

import logging
import threading

import av
import pytest

from recorder.backlog import Backlog, VideoItem
from tests.recorder.synth_media import audio_frames, tone


def video(pts: int, *, key: bool = False) -> VideoItem:
    return VideoItem(b"\x00\x00\x00\x01", pts, pts, key)


def audio() -> av.AudioFrame:
    return audio_frames(tone(0.0, 0.02), 0.0)[0]


def test_nothing_is_taken_before_the_first_keyframe() -> None:
    backlog = Backlog("r", max_items=8)
    assert not backlog.offer_video(video(0))
    assert not backlog.offer_audio(audio())
    assert backlog.offer_video(video(3000, key=True))
    assert backlog.offer_audio(audio())
    assert len(backlog) == 2
    assert (backlog.dropped_video, backlog.dropped_audio) == (0, 0)


def test_audio_is_dropped_before_video(caplog: pytest.LogCaptureFixture) -> None:
    backlog = Backlog("r1", max_items=8, audio_share=0.5)
    backlog.offer_video(video(0, key=True))
    with caplog.at_level(logging.WARNING, logger="recorder.backlog"):
        accepted = [backlog.offer_audio(audio()) for _ in range(5)]
        more_video = [backlog.offer_video(video(pts)) for pts in (1, 2, 3, 4, 5)]

    assert accepted == [True, True, True, False, False]  # 4 of 8: audio's share
    assert more_video == [True, True, True, True, False]
    assert (backlog.dropped_video, backlog.dropped_audio) == (1, 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("r1: writer falling behind")


def test_after_a_video_drop_only_a_keyframe_is_taken() -> None:
    backlog = Backlog("r", max_items=4)
    backlog.offer_video(video(0, key=True))
    for pts in (1, 2, 3):
        backlog.offer_video(video(pts))
    assert not backlog.offer_video(video(4))  # full
    while len(backlog):
        backlog.get()

    assert not backlog.offer_video(video(5))  # room again, but not decodable
    assert backlog.offer_audio(audio())  # audio does not wait for the keyframe
    assert backlog.offer_video(video(6, key=True))
    assert backlog.offer_video(video(7))
    assert backlog.dropped_video == 2


def test_get_drains_then_reports_the_close() -> None:
    backlog = Backlog("r", max_items=4)
    backlog.offer_video(video(0, key=True))
    backlog.close()

    assert not backlog.offer_video(video(1, key=True))
    item = backlog.get()
    assert isinstance(item, VideoItem) and item.pts == 0
    assert backlog.get() is None


def test_get_waits_for_an_offer_from_another_thread() -> None:
    backlog = Backlog("r", max_items=4)
    taken: list[object] = []
    reader = threading.Thread(target=lambda: taken.append(backlog.get()))
    reader.start()
    backlog.offer_video(video(0, key=True))
    reader.join(timeout=5)

    assert not reader.is_alive()
    assert isinstance(taken[0], VideoItem)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Backlog("r", max_items=1)
    with pytest.raises(ValueError):
        Backlog("r", audio_share=0)


def test_discard_lets_go_of_everything_queued() -> None:
    backlog = Backlog("r", max_items=4)
    backlog.offer_video(video(0, key=True))
    backlog.offer_audio(audio())

    assert backlog.discard() == 2
    assert backlog.get() is None
    assert not backlog.offer_audio(audio())
