"""--self-signed: a certificate made once, kept in the data dir, served over HTTPS."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
from aiohttp import web

from server.accesslog import RedactingAccessLogger
from server.app import create_app
from server.tls import server_context
from tests.conftest import node_config


async def test_self_signed_certificate_is_made_once_and_serves_https(
    tmp_path: Path,
) -> None:
    config = node_config(tmp_path / "data", self_signed=True)
    context = server_context(config)
    assert context is not None
    cert = tmp_path / "data" / "tls" / "cert.pem"
    key = tmp_path / "data" / "tls" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    first = cert.read_bytes()
    assert server_context(config) is not None
    assert cert.read_bytes() == first  # reused, not remade
    assert config.origin.startswith("https://")

    runner = web.AppRunner(create_app(config), access_log_class=RedactingAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port, ssl_context=context).start()
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{config.origin}/healthz", ssl=trust) as resp,
        ):
            assert (await resp.json())["status"] == "ok"
    finally:
        await runner.cleanup()


def test_no_tls_options_means_plain_http(tmp_path: Path) -> None:
    assert server_context(node_config(tmp_path)) is None
