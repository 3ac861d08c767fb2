"""Timeline: one JSON event per line, readable at once, torn lines tolerated."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from recorder import Timeline, read_timeline


class FakeClock:
    """A session clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_append_writes_a_line_readable_before_close(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "timeline.jsonl"
    timeline = Timeline(path, clock)
    clock.now = 1.23456
    event = timeline.append("join", participant="p1", role="caller")

    # Read by another reader while the timeline is still open.
    assert json.loads(path.read_text()) == event
    assert event == {"t": 1.235, "kind": "join", "participant": "p1", "role": "caller"}
    assert list(event) == ["t", "kind", "participant", "role"]
    timeline.close()
    assert timeline.closed


def test_events_come_back_in_order(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "timeline.jsonl"
    with Timeline(path, clock) as timeline:
        for index, kind in enumerate(["start", "join", "note", "leave"]):
            clock.now = float(index)
            timeline.append(kind, text="é ✓")

    events = read_timeline(path)
    assert [(e["t"], e["kind"]) for e in events] == [
        (0.0, "start"),
        (1.0, "join"),
        (2.0, "note"),
        (3.0, "leave"),
    ]
    assert events[2]["text"] == "é ✓"


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    path.write_text('{"t": 0.0, "kind": "start"}\n{"t": 1.5, "kind": "jo')
    assert read_timeline(path) == [{"t": 0.0, "kind": "start"}]


def test_reopening_after_a_torn_line_keeps_new_events_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "timeline.jsonl"
    path.write_text('{"t": 0.0, "kind": "start"}\n{"t": 1.5, "kind": "jo')
    clock = FakeClock()
    clock.now = 9.0
    with Timeline(path, clock) as timeline:
        timeline.append("end", reason="crash")

    with caplog.at_level(logging.WARNING, logger="recorder.timeline"):
        events = read_timeline(path)
    assert [e["kind"] for e in events] == ["start", "end"]
    assert "skipping unreadable line" in caplog.text  # the torn one, now inside


def test_bad_events_are_refused_and_leave_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    timeline = Timeline(path, FakeClock())
    with pytest.raises(ValueError, match="reserved"):
        timeline.append("note", t=5)
    with pytest.raises(TypeError):
        timeline.append("note", payload=object())
    with pytest.raises(ValueError):
        timeline.append("note", level=float("nan"))
    assert path.read_text() == ""

    timeline.close()
    with pytest.raises(ValueError, match="closed"):
        timeline.append("note")
