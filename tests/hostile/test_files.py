"""Files through HTTP, as an attacker tries them: traversal on every route that
serves files, tokens of one session on another's files, bounded bodies.

Unit tests of the name checks and upload typing are in tests/test_files.py; the
library's media routes in tests/test_library_http.py; upload refusals (415, 413)
in tests/test_session_tools.py.
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


@pytest.mark.parametrize(
    ("sid", "name"),
    [
        ("SID", "..%2f..%2f..%2fcanary.txt"),
        ("SID", "%2e%2e%2f%2e%2e%2f%2e%2e%2fcanary.txt"),
        ("SID", "..%5c..%5c..%5ccanary.txt"),
        ("..%2f..", "canary.txt"),
        ("%2e%2e", "..%2fcanary.txt"),
        ("SID", "canary.txt%00.png"),
    ],
)
async def test_session_file_route_never_leaves_the_session(
    node: RunningNode, http: aiohttp.ClientSession, sid: str, name: str
) -> None:
    async with http.get(
        node.direct_link(), headers={"Accept": "application/json"}
    ) as resp:
        session = (await resp.json())["session"]
    files = node.config.recordings_dir / session / "files"
    files.mkdir(parents=True, exist_ok=True)
    (node.config.data_dir / "canary.txt").write_text("CANARY")
    (files.parent / "canary.txt").write_text("CANARY")
    path = f"/api/sessions/{sid.replace('SID', session)}/files/{name}"
    async with http.get(URL(f"{node.base}{path}", encoded=True), headers=ADMIN) as r:
        assert r.status in (400, 403, 404), path
        assert "CANARY" not in await r.text()


async def test_a_customer_token_opens_only_its_own_session_files(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    boots = []
    for _ in range(2):
        async with (
            aiohttp.ClientSession() as fresh,
            fresh.get(
                node.direct_link(), headers={"Accept": "application/json"}
            ) as resp,
        ):
            boots.append(await resp.json())
    mine, other = boots
    name = "still-1-0123456789abcdef.png"
    for boot in boots:
        files = node.config.recordings_dir / boot["session"] / "files"
        files.mkdir(parents=True)
        (files / name).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    bearer = {"Authorization": f"Bearer {mine['token']}"}
    base = f"{node.base}/api/sessions"
    async with http.get(f"{base}/{mine['session']}/files/{name}", headers=bearer) as r:
        assert r.status == 200  # the customer's own still
    async with http.get(f"{base}/{other['session']}/files/{name}", headers=bearer) as r:
        assert r.status == 403
        assert (await r.json())["reason"] == "This token does not open this session."
