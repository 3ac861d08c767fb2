"""The server as a subprocess: kill -9 mid-session, restart, the recording survives."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import av
import pytest

from tests.conftest import free_port
from tests.peers import Customer, Technician, wait_for

REPO = Path(__file__).resolve().parent.parent
ADMIN_KEY = "crash-test-admin-key"

pytestmark = pytest.mark.slow


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.args = args or []
        self.env = env or {}

    def start(self, preexec_fn: Callable[[], None] | None = None) -> None:
        env = {
            **os.environ,
            "TAPLINE_SECRET": "crash-test-secret-0123456789",
            "TAPLINE_ADMIN_KEY": ADMIN_KEY,
            **self.env,
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "run.py",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--ice-host",
                    "127.0.0.1",
                    "--no-demo",
                    *self.args,
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec_fn,
            )

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, (
                    self.log.read_text()
                )
                try:
                    async with http.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)  # bounded poll while the process starts
        raise AssertionError("server did not start:\n" + self.log.read_text())

    def kill(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data")
    yield process
    process.stop()


async def _link(http: aiohttp.ClientSession, base: str, **body: str) -> str:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with http.post(f"{base}/api/links", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["url"])


async def test_recording_survives_kill_9_and_is_finalized_on_restart(
    server: ServerProcess, http: aiohttp.ClientSession, tech_http: aiohttp.ClientSession
) -> None:
    server.start()
    await server.ready()
    login = await _link(http, server.base, kind="login", name="tech-1")
    direct = await _link(http, server.base, kind="direct", technician="tech-1")

    technician = Technician(server.base, tech_http)
    customer = Customer(server.base, http, colour="yellow")
    try:
        await technician.sign_in(login)
        await technician.join()
        session = await customer.join(direct)
        await technician.expect("session", session=session)
        await technician.take(session)
        await customer.expect("session", state="live", timeout_s=15)
        live_at = time.monotonic()
        await wait_for(lambda: time.monotonic() - live_at >= 5.0, 8, "5 s live")
        assert technician.video.frames > 60
        assert server.kill(signal.SIGKILL) == -signal.SIGKILL
        session_s = time.monotonic() - live_at
    finally:
        await customer.close()
        await technician.close()

    directory = server.data_dir / "recordings" / session
    assert not (directory / "meta.json").exists()
    server.start()
    await server.ready()
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["recovered"] is True

    with av.open(str(directory / "video.mp4")) as container:
        frames = list(container.decode(video=0))
        assert container.streams.audio
    covered = float(frames[-1].time - frames[0].time)
    assert covered >= session_s - 1.5, (covered, session_s, meta["start_s"])
    lines = (directory / "timeline.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert events[-1]["kind"] == "end"
    assert events[-1]["reason"] == "server stopped unexpectedly"

    # A clean stop: SIGTERM ends the process promptly with status 0.
    assert server.kill(signal.SIGTERM) == 0
