"""Links: signed, scoped, expiring; single use, revocation and device binding."""

from __future__ import annotations

import pytest

from server.errors import LinkError
from server.links import Kind, LinkSigner
from server.store import MemoryStore
from tests.conftest import StoreMaker

SECRET = "unit-test-secret-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock: Clock, make_store: StoreMaker) -> LinkSigner:
    return LinkSigner(SECRET, make_store(clock), clock)


async def test_signed_link_round_trips_its_scope(signer: LinkSigner) -> None:
    token, grant = signer.sign(Kind.DIRECT, 3600, technician="tech-1")
    checked = await signer.check(token, Kind.DIRECT)
    assert checked == grant
    assert checked.get("technician") == "tech-1"


def test_forged_signature_is_rejected(signer: LinkSigner) -> None:
    token, _ = signer.sign(Kind.DIRECT, 3600, technician="tech-1")
    payload, mac = token.split(".")
    with pytest.raises(LinkError) as caught:
        signer.verify(f"{payload}.{mac[:-2]}AA", Kind.DIRECT)
    assert caught.value.code == "forged"


def test_link_signed_with_another_secret_is_rejected(signer: LinkSigner) -> None:
    other = LinkSigner("another-secret-0123456789", MemoryStore())
    token, _ = other.sign(Kind.DIRECT, 3600, technician="tech-1")
    with pytest.raises(LinkError) as caught:
        signer.verify(token)
    assert caught.value.code == "forged"


def test_tampered_scope_is_rejected(signer: LinkSigner) -> None:
    token, _ = signer.sign(Kind.LOGIN, 3600, name="tech-1", role="technician")
    _, mac = token.split(".")
    evil, _ = LinkSigner("x" * 32, MemoryStore()).sign(
        Kind.LOGIN, 3600, name="tech-1", role="admin"
    )
    with pytest.raises(LinkError):
        signer.verify(f"{evil.split('.')[0]}.{mac}")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "%%%.%%%", "x" * 5000])
def test_malformed_tokens_are_rejected(signer: LinkSigner, token: str) -> None:
    with pytest.raises(LinkError) as caught:
        signer.verify(token)
    assert caught.value.code == "forged"


def test_expired_link_is_rejected(signer: LinkSigner, clock: Clock) -> None:
    token, _ = signer.sign(Kind.DIRECT, 60, technician="tech-1")
    clock.now += 61
    with pytest.raises(LinkError) as caught:
        signer.verify(token)
    assert caught.value.code == "expired"


def test_link_of_another_kind_is_rejected(signer: LinkSigner) -> None:
    token, _ = signer.sign(Kind.DIRECT, 60, technician="tech-1")
    with pytest.raises(LinkError) as caught:
        signer.verify(token, Kind.LOGIN)
    assert caught.value.code == "wrong_kind"


async def test_replayed_login_link_is_rejected(signer: LinkSigner) -> None:
    token, _ = signer.sign(Kind.LOGIN, 600, name="tech-1", role="technician")
    await signer.burn(await signer.check(token))
    with pytest.raises(LinkError) as caught:
        await signer.burn(await signer.check(token))
    assert caught.value.code == "used"


async def test_revoked_link_is_rejected(signer: LinkSigner) -> None:
    token, grant = signer.sign(Kind.DIRECT, 600, technician="tech-1")
    await signer.revoke(grant.id, 3600)
    with pytest.raises(LinkError) as caught:
        await signer.check(token)
    assert caught.value.code == "revoked"


async def test_link_is_bound_to_the_first_device(signer: LinkSigner) -> None:
    _, grant = signer.sign(Kind.DIRECT, 600, technician="tech-1")
    await signer.bind(grant, "device-a")
    await signer.bind(grant, "device-a")  # the same device may come back
    with pytest.raises(LinkError) as caught:
        await signer.bind(grant, "device-b")
    assert caught.value.code == "other_device"


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        LinkSigner("short", MemoryStore())
