"""Fixtures for the recorder tests: a recordings folder and helper subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

RunScript = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    path = tmp_path / "recordings"
    path.mkdir()
    return path


@pytest.fixture
def run_script() -> RunScript:
    """Runs ``tests/recorder/<name>`` in a fresh interpreter, bounded in time."""

    def run(
        name: str, *args: str, timeout_s: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            [sys.executable, str(HERE / name), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    return run
