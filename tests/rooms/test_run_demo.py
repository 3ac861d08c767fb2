"""`python run.py` opens the built-in demo room and prints its links; --no-demo not."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port
from tests.peers import wait_for

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


async def _serve(
    tmp_path: Path, *flags: str
) -> tuple[subprocess.Popen[bytes], Path, str]:
    port = free_port()
    log = tmp_path / f"run-{port}.log"
    env = {**os.environ, "TAPLINE_SECRET": "run-demo-secret-0123456789"}
    with log.open("wb") as out:
        data = str(tmp_path / "data")
        args = ["run.py", "--port", str(port), "--data-dir", data]
        proc = subprocess.Popen(
            [sys.executable, *args, "--ice-host", "127.0.0.1", *flags],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    await wait_for(
        lambda: (
            "Technician console sign-in" in log.read_text() or proc.poll() is not None
        ),
        30,
        "run.py to start",
    )
    assert proc.poll() is None, log.read_text()
    return proc, log, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)


async def _get(url: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            url, headers={"Accept": "application/json"}, allow_redirects=False
        ) as resp,
    ):
        location = resp.headers.get("Location", "")
        return resp.status, location or await resp.text()


async def _until_serving(url: str) -> tuple[int, str]:
    for _ in range(200):
        try:
            return await _get(url)
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.05)  # it binds its port just after printing
    raise AssertionError(f"{url} never answered")


async def test_run_prints_the_demo_links_and_no_demo_turns_it_off(
    tmp_path: Path,
) -> None:
    proc, log, _ = await _serve(tmp_path)
    try:
        text = log.read_text()
        viewer = re.search(r"Demo room, viewer link: (\S+)", text)
        studio = re.search(r"Demo room, studio sign-in \(one use\): (\S+)", text)
        assert viewer and studio, text
        status, body = await _until_serving(viewer.group(1))
        assert status == 200 and '"room": "demo"' in body
        assert await _get(studio.group(1)) == (303, "/studio?room=demo")
    finally:
        _stop(proc)

    proc, log, base = await _serve(tmp_path, "--no-demo")
    try:
        assert "Demo room" not in log.read_text()
        # The same link (same secret) on the server started without the demo.
        path = viewer.group(1).split("/j/", 1)[1]
        status, body = await _until_serving(f"{base}/j/{path}")
        assert status == 410 and "no such demo" in body
    finally:
        _stop(proc)
