"""A recording on a full disk fails alone: logged once, the session goes on.

The disk is "full" through RLIMIT_FSIZE in a subprocess, so writes really fail
with EFBIG inside FFmpeg, as they would with ENOSPC.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from recorder import META_NAME, VIDEO_NAME, finalize_crashed, read_meta

RunScript = Callable[..., subprocess.CompletedProcess[str]]

LIMIT_BYTES = 24000  # room for the header and a couple of 1 s fragments


def run_full_disk(run_script: RunScript, directory: Path, mode: str) -> dict[str, Any]:
    result = run_script("fsize_writer.py", str(directory), str(LIMIT_BYTES), mode)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def assert_failed_once(report: dict[str, Any], name: str) -> None:
    assert report["error"].startswith("OSError: [Errno 27] File too large")
    assert report["errors_logged"] == [f"{name}: recording failed: {report['error']}"]
    assert report["queued_after_failure"] == 0  # later media was ignored
    assert len(report["closed_lines"]) == 1


@pytest.mark.slow
def test_space_back_before_close_finalizes_what_was_written(
    recordings: Path, run_script: RunScript
) -> None:
    directory = recordings / "freed"
    report = run_full_disk(run_script, directory, "freed")

    assert_failed_once(report, "freed")
    assert "cut short by a write failure" in report["closed_lines"][0]
    meta = report["meta"]
    assert meta == read_meta(directory)
    assert meta["finalized"] and not meta["recovered"]
    assert meta["error"] == report["error"]
    assert 1.0 <= meta["duration_s"] < 6.0
    with av.open(str(directory / VIDEO_NAME)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == round(meta["duration_s"] * 30)


@pytest.mark.slow
def test_disk_still_full_at_close_leaves_the_file_for_the_sweep(
    recordings: Path, run_script: RunScript
) -> None:
    directory = recordings / "full"
    report = run_full_disk(run_script, directory, "full")

    assert_failed_once(report, "full")
    assert report["meta"] is None
    assert "not finalized" in report["closed_lines"][0]
    assert not (directory / META_NAME).exists()
    assert sorted(p.name for p in directory.iterdir()) == [VIDEO_NAME]

    assert finalize_crashed(recordings) == [directory]
    meta = read_meta(directory)
    assert meta is not None and meta["recovered"]
    assert meta["duration_s"] >= 1.0
