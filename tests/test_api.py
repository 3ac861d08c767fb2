"""Operator REST, staff sign-in and the link landing page, through real HTTP."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import RunningNode, node_config, start_node
from tests.peers import Customer

REPO = Path(__file__).resolve().parent.parent
ADMIN = {"Authorization": "Bearer test-admin-key"}


async def test_admin_key_makes_a_direct_link_that_opens(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    body = {"kind": "direct", "technician": "tech-1"}
    async with http.post(f"{node.base}/api/links", json=body, headers=ADMIN) as resp:
        assert resp.status == 201
        link = await resp.json()
    assert link["url"].startswith(f"{node.base}/j/")
    assert link["qr_svg"].startswith("<?xml") or "<svg" in link["qr_svg"]
    async with http.get(link["url"]) as resp:
        assert resp.status == 200
        assert "Start video" in await resp.text()
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"kind": "teleport"}, 400, "bad_request"),
        ({"kind": "direct"}, 400, "bad_request"),
        ({"kind": "direct", "technician": "t", "ttl_s": 5}, 400, "bad_request"),
        ({"kind": "login", "name": "t", "role": "emperor"}, 400, "bad_request"),
    ],
)
async def test_bad_link_requests_get_a_typed_error(
    node: RunningNode,
    http: aiohttp.ClientSession,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    async with http.post(f"{node.base}/api/links", json=body, headers=ADMIN) as resp:
        assert resp.status == status
        assert (await resp.json())["code"] == code


async def test_malformed_json_body_is_refused(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{node.base}/api/links", data=b"{nope", headers=ADMIN
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == "bad_json"


async def test_api_needs_a_key_or_a_sign_in(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    url = f"{node.base}/api/links"
    async with http.post(url, json={"kind": "direct", "technician": "t"}) as resp:
        assert resp.status == 401
    wrong = {"Authorization": "Bearer nope"}
    async with http.post(url, json={"kind": "direct"}, headers=wrong) as resp:
        assert resp.status == 403
    async with http.get(f"{node.base}/console") as resp:
        assert resp.status == 401
        assert "Sign in" in await resp.text()


async def test_console_makes_links_to_itself_only_and_from_its_origin(
    node: RunningNode, tech_http: aiohttp.ClientSession
) -> None:
    async with tech_http.get(node.login_link("tech-1")) as resp:
        assert resp.status == 200 and resp.url.path == "/console"
        cookie = resp.history[0].cookies["tapline_staff"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    url = f"{node.base}/api/links"
    same_origin = {"Origin": node.base}
    async with tech_http.post(url, json={"kind": "direct"}) as resp:
        assert resp.status == 403  # no Origin: could be another site's form
    evil = {"Origin": "https://evil.example"}
    async with tech_http.post(url, json={"kind": "direct"}, headers=evil) as resp:
        assert resp.status == 403
    async with tech_http.post(url, json={"kind": "direct"}, headers=same_origin) as r:
        assert r.status == 201
    other = {"kind": "direct", "technician": "tech-2"}
    async with tech_http.post(url, json=other, headers=same_origin) as resp:
        assert resp.status == 403
    login = {"kind": "login", "name": "x"}
    async with tech_http.post(url, json=login, headers=same_origin) as resp:
        assert resp.status == 403


async def test_login_link_works_once(
    node: RunningNode, tech_http: aiohttp.ClientSession, http: aiohttp.ClientSession
) -> None:
    login = node.login_link("tech-1")
    async with tech_http.get(login, allow_redirects=False) as resp:
        assert resp.status == 303
    async with http.get(login) as resp:
        assert resp.status == 410
        assert "already used" in await resp.text()
    # The same technician, still signed in by it, opens it again: to the console.
    async with tech_http.get(login, allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/console"
        assert "tapline_staff" not in resp.cookies  # no second sign-in
    # Signed in as someone else, it is still used.
    other = node.login_link("tech-2")
    async with http.get(other, allow_redirects=False) as resp:
        assert resp.status == 303
    async with http.get(login) as resp:
        assert resp.status == 410


async def test_revoked_link_is_refused_with_words(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    body = {"kind": "direct", "technician": "tech-1"}
    async with http.post(f"{node.base}/api/links", json=body, headers=ADMIN) as resp:
        link = await resp.json()
    async with http.delete(f"{node.base}/api/links/{link['id']}", headers=ADMIN) as r:
        assert r.status == 200
    async with http.get(link["url"]) as resp:
        assert resp.status == 410
        assert "withdrawn" in await resp.text()


async def test_health_metrics_and_openapi(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{node.base}/healthz") as resp:
        assert (await resp.json())["status"] == "ok"
    assert await node.metric("peer_connections") == 0
    assert await node.metric("sessions_active") == 0
    async with http.get(f"{node.base}/api/openapi.json") as resp:
        spec = await resp.json()
    assert {"/api/links", "/api/links/{id}", "/healthz", "/metrics"} <= set(
        spec["paths"]
    )


async def test_tokens_and_keys_never_reach_the_logs(
    node: RunningNode,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    login = node.login_link("tech-1")
    direct = node.direct_link("tech-1")
    async with tech_http.get(login) as resp:
        assert resp.status == 200
    async with http.get(direct, headers={"Accept": "application/json"}) as resp:
        boot = await resp.json()
    text = caplog.text
    for secret in (login.rsplit("/", 1)[1], direct.rsplit("/", 1)[1], boot["token"]):
        assert secret not in text
    assert "test-admin-key" not in text and node.config.secret not in text


def test_offline_link_command_signs_with_the_servers_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = subprocess.run(
        [
            sys.executable,
            "run.py",
            "link",
            "direct",
            "--technician",
            "tech-9",
            "--data-dir",
            str(data),
            "--public-url",
            "http://127.0.0.1:1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    url = out.stdout.strip()
    assert url.startswith("http://127.0.0.1:1/j/")
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    from server.app import build_node

    node = build_node(node_config(data, secret=""))
    grant = node.signer.verify(url.rsplit("/", 1)[1])
    assert grant.get("technician") == "tech-9"


def test_help_explains_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "run.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    for option in (
        "--port",
        "--data-dir",
        "--ice-host",
        "--public-url",
        "--self-signed",
    ):
        assert option in out.stdout


async def test_first_start_creates_an_admin_key_file(tmp_path: Path) -> None:
    running = await start_node(node_config(tmp_path / "d", admin_key=""))
    try:
        key_file = tmp_path / "d" / "admin.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert running.node.admin_key_created
        assert running.node.admin_key == key_file.read_text().strip()
    finally:
        await running.runner.cleanup()


async def test_customer_page_says_whether_the_call_is_recorded(tmp_path: Path) -> None:
    for record in (True, False):
        running = await start_node(node_config(tmp_path / str(record), record=record))
        try:
            async with aiohttp.ClientSession() as http:
                boot = await Customer(running.base, http).open_link(
                    running.direct_link()
                )
            assert boot["recorded"] is record
        finally:
            await running.runner.cleanup()
