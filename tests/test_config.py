"""Config: defaults, TAPLINE_* variables, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Config


def test_environment_overrides_defaults() -> None:
    config = Config.from_env(
        {
            "TAPLINE_PORT": "9000",
            "TAPLINE_DEMO": "false",
            "TAPLINE_DATA_DIR": "/tmp/x",
            "TAPLINE_ICE_SERVERS": "turn:a.example:3478, stun:b.example",
            "UNRELATED": "1",
        }
    )
    assert config.port == 9000
    assert config.demo is False
    assert config.data_dir == Path("/tmp/x")
    assert config.ice_servers == ["turn:a.example:3478", "stun:b.example"]


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="TAPLINE_PORT"):
        Config.from_env({"TAPLINE_PORT": "eighty"})


def test_secrets_are_starred() -> None:
    config = Config(secret="s3cret-value", admin_key="k3y-value")
    assert "s3cret" not in repr(config)
    assert config.safe_dict()["secret"] == "***"
    assert config.safe_dict()["admin_key"] == "***"


def test_origin_follows_tls_and_public_url() -> None:
    assert Config(port=8080).origin == "http://127.0.0.1:8080"
    assert Config(port=8443, self_signed=True).origin == "https://127.0.0.1:8443"
    assert Config(public_url="https://help.example/").origin == "https://help.example"


def test_redis_settings_come_from_the_environment_and_hide_the_password() -> None:
    config = Config.from_env(
        {
            "TAPLINE_REDIS_URL": "redis://tapline:pa55word@redis.internal:6379/0",
            "TAPLINE_NODE_TIMEOUT_S": "5",
        }
    )
    assert config.node_timeout_s == 5.0
    assert config.redis_url.startswith("redis://tapline:pa55word@")
    assert (
        config.safe_dict()["redis_url"] == "redis://tapline:***@redis.internal:6379/0"
    )
    assert Config(redis_url="redis://r:6379").safe_dict()["redis_url"] == (
        "redis://r:6379"
    )
