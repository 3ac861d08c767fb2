"""Files: nothing outside static/ is served, recordings are not on the web, and
request bodies are bounded.

The node serves files from one route only, ``/static`` (aiohttp's static handler,
which resolves the path and refuses anything outside the folder). Recordings and
snapshots stay on disk under the data dir; no route serves them yet.
"""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from tests.conftest import RunningNode

ADMIN = {"Authorization": "Bearer test-admin-key"}


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server/config.py",
        "/static/%2e%2e/server/config.py",
        "/static/..%2fserver%2fconfig.py",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/....//server/config.py",
        "/static/tapline.js%00.py",
        "/static//etc/passwd",
    ],
)
async def test_static_route_never_leaves_its_folder(
    node: RunningNode, http: aiohttp.ClientSession, path: str
) -> None:
    url = URL(f"{node.base}{path}", encoded=True)
    async with http.get(url) as resp:
        assert resp.status in (400, 403, 404), path
        text = await resp.text()
    assert "class Config" not in text and "root:" not in text


async def test_recordings_and_secrets_are_not_served(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    recordings = node.config.recordings_dir / "abc"
    recordings.mkdir(parents=True)
    (recordings / "video.mp4").write_bytes(b"\0" * 16)
    for path in (
        "/recordings/abc/video.mp4",
        "/data/recordings/abc/video.mp4",
        "/static/../data/secret.key",
        "/secret.key",
    ):
        async with http.get(f"{node.base}{path}") as resp:
            assert resp.status in (403, 404), path


async def test_request_bodies_are_bounded(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    url = f"{node.base}/api/links"
    middling = {"kind": "direct", "technician": "t", "pad": "x" * 20_000}
    async with http.post(url, json=middling, headers=ADMIN) as resp:
        assert resp.status == 413
        assert (await resp.json())["code"] == "too_large"
    async with http.post(url, data=b"x" * 200_000, headers=ADMIN) as resp:
        assert resp.status == 413


async def test_binary_websocket_uploads_are_refused(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    ws = await http.ws_connect(f"{node.base}/ws")
    try:
        await ws.send_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 1000)
        message = await ws.receive_json(timeout=5)
        assert (message["code"], message["reason"]) == (
            "bad_message",
            "Send JSON text.",
        )
    finally:
        await ws.close()
