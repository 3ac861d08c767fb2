"""The recorder package: its public surface, and no web or WebRTC imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import recorder

REPO = Path(__file__).resolve().parents[2]


def test_all_names_the_public_surface() -> None:
    assert sorted(recorder.__all__) == sorted(
        [
            "META_NAME",
            "TIMELINE_NAME",
            "VIDEO_NAME",
            "AudioMixer",
            "Recording",
            "Timeline",
            "finalize_crashed",
            "read_meta",
            "read_timeline",
        ]
    )
    for name in recorder.__all__:
        assert getattr(recorder, name) is not None


def test_recorder_imports_neither_aiohttp_nor_aiortc() -> None:
    # A fresh interpreter: the test session itself has aiohttp loaded.
    code = (
        "import json, sys, recorder; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    loaded = set(json.loads(result.stdout))
    assert not loaded & {"aiohttp", "aiortc", "aioice", "server"}
