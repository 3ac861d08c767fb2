"""Links and roles: wrong roles, guessing, cross-site requests, cookies, logs.

Forged, expired, wrong-kind, replayed and revoked links are refused in
tests/test_links.py (unit) and tests/test_api.py (through HTTP); this file adds
what an attacker does next.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from server.links import Kind
from tests.conftest import TEST_SECRET, RunningNode
from tests.hostile.conftest import NodeFactory, live_session, next_of

ADMIN = {"Authorization": "Bearer test-admin-key"}


@pytest.fixture
async def other_address() -> AsyncIterator[aiohttp.ClientSession]:
    """A client on 127.0.0.2: another address as far as the server can tell."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


async def _signed_in(node: RunningNode, http: aiohttp.ClientSession) -> None:
    async with http.get(node.login_link("tech-1"), allow_redirects=False) as resp:
        assert resp.status == 303


async def test_expired_link_page_says_so(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    token, _ = node.node.signer.sign(Kind.DIRECT, -5, technician="tech-1")
    async with http.get(f"{node.base}/j/{token}") as resp:
        assert resp.status == 410
        assert "This link has expired. Ask for a new one." in await resp.text()


async def test_viewer_token_cannot_join_a_support_session(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    viewer, _ = node.node.signer.sign(
        Kind.PARTICIPANT, 600, room="r1", role="viewer", name="Viewer"
    )
    ws = await http.ws_connect(f"{node.base}/ws")
    try:
        await ws.send_json({"type": "join", "token": viewer, "ref": "j"})
        error = await next_of(ws, "error")
        assert (error["code"], error["reason"]) == (
            "forbidden",
            "This is not a support session token.",
        )
        assert node.node.desk.sessions == {}
    finally:
        await ws.close()


async def test_customer_token_is_no_staff_sign_in(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        node.direct_link(), headers={"Accept": "application/json"}
    ) as resp:
        participant = (await resp.json())["token"]
    http.cookie_jar.update_cookies({"tapline_staff": participant})
    async with http.get(f"{node.base}/console") as resp:
        assert resp.status == 401
    async with http.get(f"{node.base}/api/sessions") as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "not_signed_in"
    ws = await http.ws_connect(f"{node.base}/ws")
    try:
        await ws.send_json({"type": "join"})
        assert (await next_of(ws, "error"))["code"] == "wrong_kind"
    finally:
        await ws.close()


async def test_technician_cannot_use_supervisor_or_studio_routes(
    node: RunningNode, tech_http: aiohttp.ClientSession
) -> None:
    await _signed_in(node, tech_http)
    async with tech_http.get(f"{node.base}/supervisor") as resp:
        assert resp.status == 403
    async with tech_http.get(f"{node.base}/studio") as resp:
        assert resp.status == 403
    async with tech_http.get(f"{node.base}/api/routing") as resp:
        assert resp.status == 403
        assert await resp.json() == {"code": "forbidden", "reason": "Supervisors only."}


async def test_cookies_are_secure_httponly_and_samesite(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(public_url="https://support.example")
    here = f"http://127.0.0.1:{node.config.port}"  # served plainly behind "TLS"
    signer = node.node.signer
    login, _ = signer.sign(Kind.LOGIN, 600, name="tech-1", role="technician")
    async with http.get(f"{here}/j/{login}", allow_redirects=False) as resp:
        staff = resp.cookies["tapline_staff"]
    assert staff["httponly"] and staff["secure"] and staff["samesite"] == "Strict"
    assert staff["path"] == "/"
    direct, _ = signer.sign(Kind.DIRECT, 600, technician="tech-1")
    async with http.get(
        f"{here}/j/{direct}", headers={"Accept": "application/json"}
    ) as resp:
        device = resp.cookies["tapline_device"]
    assert device["httponly"] and device["secure"] and device["samesite"] == "Lax"


async def test_guessing_links_from_one_address_is_stopped(
    make_node: NodeFactory,
    http: aiohttp.ClientSession,
    other_address: aiohttp.ClientSession,
) -> None:
    node = await make_node(auth_failures_per_minute=1, auth_failure_burst=5)
    real = node.direct_link()
    guesses = [f"{node.base}/j/{'A' * 20}{i}.{'B' * 27}" for i in range(5)]
    for url in guesses:
        async with http.get(url) as resp:
            assert resp.status == 403
    async with http.get(real, headers={"Accept": "application/json"}) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) > 0
        body = await resp.json()
        assert body["code"] == "rate_limited"
        assert body["reason"].startswith("Too many refused attempts from your address")
    # Another address is not punished for it.
    async with other_address.get(real, headers={"Accept": "application/json"}) as r:
        assert r.status == 200


async def test_guessing_the_api_key_is_stopped(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(auth_failures_per_minute=1, auth_failure_burst=3)
    url = f"{node.base}/api/sessions"
    for i in range(3):
        async with http.get(url, headers={"Authorization": f"Bearer guess-{i}"}) as r:
            assert r.status == 403
    async with http.get(url, headers=ADMIN) as resp:
        assert resp.status == 429


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "same-origin"}, 201),
        ({"Origin": "SELF"}, 201),
    ],
)
async def test_state_changes_with_the_cookie_must_come_from_our_pages(
    node: RunningNode,
    tech_http: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
) -> None:
    await _signed_in(node, tech_http)
    if headers.get("Origin") == "SELF":
        headers = {"Origin": node.base}
    async with tech_http.post(
        f"{node.base}/api/links", json={"kind": "direct"}, headers=headers
    ) as resp:
        assert resp.status == status
        if status == 403:
            assert await resp.json() == {
                "code": "forbidden",
                "reason": "Cross-site request refused.",
            }


async def test_cross_site_logout_is_refused_and_the_key_is_exempt(
    node: RunningNode, tech_http: aiohttp.ClientSession, http: aiohttp.ClientSession
) -> None:
    await _signed_in(node, tech_http)
    evil = {"Origin": "https://evil.example"}
    async with tech_http.post(f"{node.base}/logout", headers=evil) as resp:
        assert resp.status == 403
    async with tech_http.get(f"{node.base}/console") as resp:
        assert resp.status == 200  # still signed in
    body = {"kind": "direct", "technician": "tech-1"}
    async with http.post(
        f"{node.base}/api/links", json=body, headers={**ADMIN, **evil}
    ) as resp:
        assert resp.status == 201  # scripts with the admin key send no cookie


async def test_no_token_or_secret_is_logged_during_a_whole_session(
    node: RunningNode,
    http: aiohttp.ClientSession,
    tech_http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    login, direct = node.login_link("tech-1"), node.direct_link("tech-1")
    customer, technician, session = await live_session(
        node.base, login, direct, http, tech_http
    )
    try:
        await customer.send(type="end", session=session)
        await customer.expect("ended")
    finally:
        await customer.close()
        await technician.close()
    staff = next(c.value for c in tech_http.cookie_jar if c.key == "tapline_staff")
    secrets = {
        "login link": login.rsplit("/", 1)[1],
        "customer link": direct.rsplit("/", 1)[1],
        "participant token": customer.boot["token"],
        "staff cookie": staff,
        "link secret": TEST_SECRET,
        "admin key": "test-admin-key",
    }
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert [name for name, value in secrets.items() if value in text] == []
    assert "live" in caplog.text  # the session really happened and was logged
